"""Which infrastructure the tests run on: real containers where a Docker engine answers
(testcontainers: Apache Kafka, MongoDB as a replica set), the embedded stack where none does.
``QUARTIER_TEST_INFRA=docker|embedded`` forces one. The same tests run on both.

The fault suite (tests/faults/) and the `make run` test always use the embedded stack: they
pause and kill server processes, which is what they test.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quartier.embedded import EmbeddedStack

INFRA_VARIABLE = "QUARTIER_TEST_INFRA"
MONGO_IMAGE = "mongo:8.0.17"  # as in deploy/docker-compose.yml
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.1"  # the image testcontainers' KafkaContainer drives


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def chosen_infra() -> str:
    forced = os.environ.get(INFRA_VARIABLE, "").strip().lower()
    if forced == "docker" and not docker_answers():
        raise pytest.UsageError(f"{INFRA_VARIABLE}=docker, but no Docker engine answers here")
    if forced in ("docker", "embedded"):
        return forced
    if forced:
        raise pytest.UsageError(f"{INFRA_VARIABLE} must be 'docker' or 'embedded', not {forced!r}")
    return "docker" if docker_answers() else "embedded"


# The variables that tell the embedded stack a server is given, so it starts none of its own.
GIVEN_BY = {
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "mongodb": "MONGODB_URI",
    "smtp": "SMTP_HOST",
    "issuer": "AUTH_ISSUER",
}


@contextlib.contextmanager
def mongodb(kind: str, data_dir: Path) -> Iterator[str]:
    """The URI of a MongoDB replica set (transactions need one)."""
    with _embedded("mongodb", data_dir) if kind == "embedded" else _mongodb_container() as uri:
        yield uri


@contextlib.contextmanager
def kafka(kind: str, data_dir: Path) -> Iterator[str]:
    """The bootstrap address of a Kafka broker."""
    with _embedded("kafka", data_dir) if kind == "embedded" else _kafka_container() as bootstrap:
        yield bootstrap


@contextlib.contextmanager
def _embedded(server: str, data_dir: Path) -> Iterator[str]:
    """The address of one embedded server, "kafka" or "mongodb"; none of the others is started."""
    stack = EmbeddedStack(data_dir, environ={variable: "unused" for s, variable in GIVEN_BY.items() if s != server})
    try:
        infra = stack.start()
        yield infra.kafka_bootstrap if server == "kafka" else infra.mongodb_uri
    finally:
        stack.stop()


@contextlib.contextmanager
def _mongodb_container() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(MONGO_IMAGE).with_command("--replSet rs0 --bind_ip_all").with_exposed_ports(27017)
    with container:
        _initiate_replica_set(container)
        host, port = container.get_container_host_ip(), container.get_exposed_port(27017)
        yield f"mongodb://{host}:{port}/?directConnection=true"


def _initiate_replica_set(container: object, timeout: float = 60.0) -> None:
    """Transactions need a replica set: initiate it and wait until this member is primary."""
    script = (
        "try { rs.status().ok } catch (e) { rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]}) };"
        "quit(db.hello().isWritablePrimary ? 0 : 1)"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = container.exec(["mongosh", "--quiet", "--eval", script])  # type: ignore[attr-defined]
        if result.exit_code == 0:
            return
        time.sleep(0.5)
    raise TimeoutError("MongoDB replica set did not become primary")


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        yield container.get_bootstrap_server()
