"""`quartier images lock`: every image of deploy/ resolved to its digest through the registry API,
with the anonymous token flow; offline, nothing is written and the registry is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from quartier.common import OperatorError
from quartier.images import LOCK_NAME, images_in, lock_command, parse

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DIGEST = "sha256:" + "ab" * 32


def test_every_image_of_compose_and_the_dockerfile_is_found_once_and_no_build_stage() -> None:
    found = images_in(DEPLOY)
    compose = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    assert "python:3.11.13-slim-bookworm" in found and "base" not in found
    assert {"apache/kafka:4.1.1", "mongo:8.0.17", "quay.io/keycloak/keycloak:26.4.5", "caddy:2.10.2"} <= set(found)
    assert len(found) == len(set(found)) and all(f"image: {i}" in compose for i in found if not i.startswith("python"))


def test_references_are_split_as_a_registry_sees_them() -> None:
    mongo, keycloak, kafka = (
        parse("mongo:8.0.17"),
        parse("quay.io/keycloak/keycloak:26.4.5"),
        parse("apache/kafka:4.1.1"),
    )
    assert (mongo.registry, mongo.repository, mongo.tag) == ("registry-1.docker.io", "library/mongo", "8.0.17")
    assert (keycloak.registry, keycloak.repository, keycloak.tag) == ("quay.io", "keycloak/keycloak", "26.4.5")
    assert (kafka.repository, kafka.tag) == ("apache/kafka", "4.1.1")


def registry(request: httpx.Request) -> httpx.Response:
    """Docker Hub as far as the lock needs it: 401 with a challenge, an anonymous token, the digest."""
    if request.url.host == "auth.example.org":
        assert request.url.params["scope"].endswith(":pull")
        return httpx.Response(200, json={"token": "anonymous-pull"})
    assert request.method == "HEAD" and "/manifests/" in request.url.path
    assert "application/vnd.oci.image.index.v1+json" in request.headers["accept"]
    if request.headers.get("authorization") != "Bearer anonymous-pull":
        challenge = 'Bearer realm="https://auth.example.org/token",service="registry.example.org"'
        return httpx.Response(401, headers={"www-authenticate": challenge})
    return httpx.Response(200, headers={"docker-content-digest": DIGEST})


def test_the_lock_records_each_digest_after_the_anonymous_token_flow(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy, ignore=shutil.ignore_patterns("secrets", "backups"))
    said = lock_command(deploy, httpx.MockTransport(registry))
    lines = [line for line in (deploy / LOCK_NAME).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert [line.split("\t") for line in lines] == [[image, DIGEST] for image in images_in(deploy)]
    assert said.startswith(f"{len(lines)} images resolved")


def test_offline_nothing_is_written_and_the_registry_is_named(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy, ignore=shutil.ignore_patterns("secrets", "backups"))

    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route to host", request=request)

    with pytest.raises(OperatorError) as refused:
        lock_command(deploy, httpx.MockTransport(offline))
    assert "cannot reach registry-1.docker.io" in str(refused.value) and "nothing written" in str(refused.value)
    assert not (deploy / LOCK_NAME).exists()
