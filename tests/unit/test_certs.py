"""`quartier certs make`: the CA and the server certificates of the compose network's TLS links.

The proof is a real TLS handshake on 127.0.0.1: a server with HOST.pem, a client that trusts only
ca.pem and checks the name HOST (as the services check `kafka` and `mongodb`)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from quartier import certs
from quartier.cli import main
from quartier.common import USAGE, OperatorError

PUBLIC = ("ca.pem", "kafka.crt", "mongodb.crt")
PRIVATE = ("kafka.pem", "kafka.p12", "kafka.p12-password", "mongodb.pem", "mongodb.p12", "mongodb.p12-password")


def handshake(server_pem: Path, cafile: Path | ssl.SSLContext, hostname: str) -> None:
    """One TLS handshake against a server holding ``server_pem``, by a client that trusts ``cafile``
    (or uses that context); raises what the client's check raises."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_pem)  # key and certificate in one file, as mongod reads it
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            with (
                connection,
                server_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False) as tls,
            ):
                try:
                    tls.do_handshake()
                    tls.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    pass  # the client refused us: its side says why

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        client_context = cafile if isinstance(cafile, ssl.SSLContext) else ssl.create_default_context(cafile=cafile)
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_context.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                assert tls.recv(2) == b"ok"
        finally:
            server.join(timeout=10)


JVM_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "KeystoreServer.java"


@pytest.mark.skipif(shutil.which("java") is None, reason="no JVM on this machine")
def test_the_jvm_serves_tls_with_the_kafka_keystore_and_its_password_file(tmp_path: Path) -> None:
    """Kafka reads HOST.p12 as a JVM does: load it with the password file, serve one handshake."""
    certs.make(tmp_path, ["kafka"])
    java = shutil.which("java") or "java"
    with subprocess.Popen(
        [java, str(JVM_SERVER), str(tmp_path / "kafka.p12"), str(tmp_path / "kafka.p12-password")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            port = server.stdout.readline().strip() if server.stdout else ""
            assert port.isdigit(), server.stderr.read() if server.stderr else "no port"
            context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
            with (
                socket.create_connection(("127.0.0.1", int(port)), timeout=30) as raw,
                context.wrap_socket(raw, server_hostname="kafka") as tls,
            ):
                assert tls.recv(2) == b"ok"
            assert server.wait(timeout=30) == 0
        finally:
            server.kill()


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_makes_a_ca_and_a_certificate_per_host_with_private_keys_0600(tmp_path: Path) -> None:
    done = certs.make(tmp_path / "certs", ["kafka", "mongodb"], ca_dir=tmp_path / "ca")
    assert [line.split(":")[0] for line in done] == ["ca", "kafka", "mongodb"]
    out = tmp_path / "certs"
    assert sorted(p.name for p in out.iterdir()) == sorted(PUBLIC + PRIVATE)
    for name in PUBLIC:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    for name in PRIVATE:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    # The CA's key only where --ca-dir says: the servers' volume never holds it.
    assert [p.name for p in (tmp_path / "ca").iterdir()] == ["ca-key.pem"]
    assert stat.S_IMODE((tmp_path / "ca" / "ca-key.pem").stat().st_mode) == 0o600
    crt = x509.load_pem_x509_certificate((out / "kafka.crt").read_bytes())
    san = crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kafka"]


def test_a_client_trusting_the_ca_completes_a_real_handshake_with_the_host_name_checked(tmp_path: Path) -> None:
    certs.make(tmp_path, ["kafka", "mongodb"])
    handshake(tmp_path / "kafka.pem", tmp_path / "ca.pem", "kafka")
    handshake(tmp_path / "mongodb.pem", tmp_path / "ca.pem", "mongodb")


def test_the_wrong_host_name_is_refused(tmp_path: Path) -> None:
    certs.make(tmp_path, ["kafka", "mongodb"])
    with pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname mismatch"):
        handshake(tmp_path / "kafka.pem", tmp_path / "ca.pem", "mongodb")


def test_a_certificate_of_another_ca_is_refused(tmp_path: Path) -> None:
    certs.make(tmp_path / "ours", ["kafka"])
    certs.make(tmp_path / "theirs", ["kafka"])
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        handshake(tmp_path / "theirs" / "kafka.pem", tmp_path / "ours" / "ca.pem", "kafka")


def test_the_kafka_keystore_holds_the_same_key_and_certificate_with_its_password(tmp_path: Path) -> None:
    certs.make(tmp_path, ["kafka"])
    password = (tmp_path / "kafka.p12-password").read_bytes().strip()
    key, cert, chain = pkcs12.load_key_and_certificates((tmp_path / "kafka.p12").read_bytes(), password)
    assert cert == x509.load_pem_x509_certificate((tmp_path / "kafka.crt").read_bytes())
    assert key is not None and key.public_key() == cert.public_key()
    assert chain == [x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates((tmp_path / "kafka.p12").read_bytes(), b"not-the-password")


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    certs.make(tmp_path, ["kafka", "mongodb"])
    before = snapshot(tmp_path)
    assert certs.make(tmp_path, ["kafka", "mongodb"]) == []
    assert snapshot(tmp_path) == before


def test_a_new_host_gets_its_certificate_and_the_others_stay(tmp_path: Path) -> None:
    certs.make(tmp_path, ["kafka"])
    kafka = (tmp_path / "kafka.pem").read_bytes()
    assert certs.make(tmp_path, ["kafka", "mongodb"]) == ["mongodb: certificate made (SAN mongodb)"]
    assert (tmp_path / "kafka.pem").read_bytes() == kafka


def later(monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    monkeypatch.setattr(certs, "_now", lambda: moment)


def test_server_certificates_near_expiry_are_renewed_under_the_same_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs.make(tmp_path, ["kafka"])
    ca, old = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "kafka.pem").read_bytes()
    later(monkeypatch, certs.SERVER_DAYS - 20)  # 20 days left: within RENEW_BEFORE
    assert certs.make(tmp_path, ["kafka"]) == ["kafka: certificate made (SAN kafka)"]
    assert (tmp_path / "ca.pem").read_bytes() == ca
    assert (tmp_path / "kafka.pem").read_bytes() != old
    renewed = x509.load_pem_x509_certificate((tmp_path / "kafka.crt").read_bytes())
    assert renewed.not_valid_after_utc - certs._now() > dt.timedelta(days=300)


def test_a_ca_near_expiry_is_replaced_and_every_certificate_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs.make(tmp_path, ["kafka", "mongodb"])
    old_ca = (tmp_path / "ca.pem").read_bytes()
    later(monkeypatch, certs.CA_DAYS - 10)
    done = certs.make(tmp_path, ["kafka", "mongodb"])
    assert [line.split(":")[0] for line in done] == ["ca", "kafka", "mongodb"]
    new_ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert new_ca != x509.load_pem_x509_certificate(old_ca)
    for host in ("kafka", "mongodb"):  # made in the future: checked by signature, not by a handshake now
        x509.load_pem_x509_certificate((tmp_path / f"{host}.crt").read_bytes()).verify_directly_issued_by(new_ca)


def test_a_tampered_or_mismatched_file_set_is_made_again(tmp_path: Path) -> None:
    certs.make(tmp_path, ["kafka", "mongodb"])
    (tmp_path / "kafka.pem").write_bytes((tmp_path / "mongodb.pem").read_bytes())
    assert certs.make(tmp_path, ["kafka", "mongodb"]) == ["kafka: certificate made (SAN kafka)"]
    handshake(tmp_path / "kafka.pem", tmp_path / "ca.pem", "kafka")


def test_the_citys_own_ca_without_its_key_keeps_valid_files_and_refuses_to_sign(tmp_path: Path) -> None:
    certs.make(tmp_path / "out", ["kafka"], ca_dir=tmp_path / "ca")
    (tmp_path / "ca" / "ca-key.pem").unlink()  # the city keeps its CA key to itself
    assert certs.make(tmp_path / "out", ["kafka"], ca_dir=tmp_path / "ca") == []
    with pytest.raises(OperatorError, match=r"mongodb: .*cannot sign") as refused:
        certs.make(tmp_path / "out", ["kafka", "mongodb"], ca_dir=tmp_path / "ca")
    assert refused.value.exit_code == USAGE
    assert not (tmp_path / "out" / "mongodb.pem").exists()


def test_owner_hands_the_key_files_to_the_servers_user(tmp_path: Path) -> None:
    uid, gid = os.getuid(), os.getgid()  # the one owner a test may give without root
    owners = certs.parse_owners([f"kafka={uid}:{gid}"], ["kafka"])
    certs.make(tmp_path, ["kafka"], owners=owners)
    assert (tmp_path / "kafka.pem").stat().st_uid == uid


@pytest.mark.parametrize("value", ["kafka", "kafka=x", "nginx=1000", "kafka=1000:g"])
def test_a_malformed_owner_is_refused(value: str) -> None:
    with pytest.raises(OperatorError, match="--owner"):
        certs.parse_owners([value], ["kafka", "mongodb"])


@pytest.mark.parametrize("value", ["", "kafka,../etc", "Kafka_1", "a" * 64])
def test_host_names_must_be_dns_labels(value: str) -> None:
    with pytest.raises(OperatorError, match="--hosts"):
        certs.parse_hosts(value)


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "make", "--out", str(tmp_path / "c"), "--hosts", "kafka"]) == 0
    assert "kafka: certificate made" in capsys.readouterr().out
    assert main(["certs", "make", "--out", str(tmp_path / "c"), "--hosts", "kafka"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert main(["certs", "make", "--out", str(tmp_path / "c"), "--hosts", "../x"]) == USAGE
