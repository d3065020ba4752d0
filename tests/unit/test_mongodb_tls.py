"""The services' MongoDB client honours the compose file's `tls=true&tlsCAFile=...` in MONGODB_URI:
it completes the TLS handshake with a server whose certificate our CA signed for the name it dialled,
and refuses one of another CA before it sends a byte of MongoDB's protocol (no password leaves).

The server is a bare TLS listener on 127.0.0.1, not a mongod: the proof is the handshake."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError

from quartier import certs


@contextmanager
def tls_listener(server_pem: Path) -> Iterator[tuple[int, threading.Event]]:
    """A TLS server with ``server_pem`` on 127.0.0.1; the event is set once a handshake completed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_pem)
    completed = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the test is done
                return
            with connection:
                try:
                    with context.wrap_socket(connection, server_side=True):
                        completed.set()  # then closes: this is no MongoDB
                except (ssl.SSLError, OSError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], completed
    finally:
        listener.close()
        thread.join(timeout=10)


def ping(port: int, ca_file: Path) -> str:
    """What pymongo says when it tries the server as the compose file's URI asks (user and password too)."""
    uri = (
        f"mongodb://actors:pw@localhost:{port}/?authSource=admin&directConnection=true"
        f"&tls=true&tlsCAFile={ca_file}&serverSelectionTimeoutMS=1500&connectTimeoutMS=1500"
    )
    client: MongoClient[dict[str, object]] = MongoClient(uri)
    try:
        with pytest.raises(ServerSelectionTimeoutError) as failed:
            client.admin.command("ping")
        return str(failed.value)
    finally:
        client.close()


def test_the_client_trusts_the_ca_file_of_the_uri(tmp_path: Path) -> None:
    certs.make(tmp_path, ["localhost"])  # the name the client dials here; in compose: mongodb
    with tls_listener(tmp_path / "localhost.pem") as (port, completed):
        error = ping(port, tmp_path / "ca.pem")
        assert completed.wait(timeout=10), error
    assert "certificate verify failed" not in error


def test_the_client_refuses_a_server_of_another_ca(tmp_path: Path) -> None:
    certs.make(tmp_path / "ours", ["localhost"])
    certs.make(tmp_path / "theirs", ["localhost"])
    with tls_listener(tmp_path / "theirs" / "localhost.pem") as (port, completed):
        error = ping(port, tmp_path / "ours" / "ca.pem")
    assert "certificate verify failed" in error
    assert not completed.is_set()
