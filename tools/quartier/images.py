"""`quartier images lock`: each image deploy/ names (docker-compose.yml's `image:` lines and the
Dockerfile's FROM), resolved to the digest its registry serves for the pinned tag, recorded in
deploy/images.lock.

A tag can be moved by whoever publishes the image; a digest cannot. The lock records which content
each tag named when it was written, so that a changed tag shows up in its diff, and a deployment
can pull by digest (``image@sha256:…``) from it. The tags in deploy/ stay the source: the lock is
written from them, never edited by hand.

The registries are asked with the Docker Registry HTTP API v2, anonymously: a HEAD of the tag's
manifest (the multi-platform index where there is one), whose ``Docker-Content-Digest`` header is
the digest; a registry that answers 401 names where to get an anonymous pull token
(``WWW-Authenticate: Bearer realm=…,service=…,scope=…``). Without a network, or when a registry
does not answer, nothing is written and the command says which registry it could not reach.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from .common import OperatorError, quiet

DEPLOY = Path("deploy")
LOCK_NAME = "images.lock"
TIMEOUT_SECONDS = 20.0
# The manifest kinds a HEAD may answer with; the index (multi-platform) ones first.
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_IMAGE_LINE = re.compile(r"^\s+image:\s*[\"']?(?P<image>[^\s\"'#]+)", re.MULTILINE)
_FROM_LINE = re.compile(r"^FROM\s+(?P<image>\S+)(?:\s+AS\s+(?P<stage>\S+))?", re.MULTILINE | re.IGNORECASE)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """An image reference split as a registry sees it: docker.io/library/mongo:8.0.17."""

    text: str  # as written in deploy/
    registry: str
    repository: str
    tag: str


def parse(text: str) -> Reference:
    name, _, tag = text.rpartition(":") if ":" in text.rsplit("/", 1)[-1] else (text, "", "latest")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = "registry-1.docker.io", name if "/" in name else f"library/{name}"
    return Reference(text, registry, repository, tag)


def images_in(deploy: Path) -> list[str]:
    """Every image docker-compose.yml and the Dockerfile name, each once, in order (not build stages)."""
    compose = (deploy / "docker-compose.yml").read_text(encoding="utf-8")
    found = [m["image"] for m in _IMAGE_LINE.finditer(compose)]
    stages: set[str] = set()
    for m in _FROM_LINE.finditer((deploy / "Dockerfile").read_text(encoding="utf-8")):
        if m["image"] not in stages:
            found.append(m["image"])
        if m["stage"]:
            stages.add(m["stage"])
    return list(dict.fromkeys(found))


def _token(client: httpx.Client, challenge: str, ref: Reference) -> str:
    params = dict(_CHALLENGE.findall(challenge))
    if not challenge.lower().startswith("bearer ") or "realm" not in params:
        raise OperatorError(f"{ref.registry} asks for a sign-in this command does not do: {challenge[:80]}")
    query = {"service": params.get("service", ref.registry), "scope": f"repository:{ref.repository}:pull"}
    answer = client.get(params["realm"], params=query)
    answer.raise_for_status()
    body = answer.json()
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str):
        raise OperatorError(f"{ref.registry} gave no pull token for {ref.repository}")
    return token


def digest_of(client: httpx.Client, ref: Reference) -> str:
    url = f"https://{ref.registry}/v2/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": ACCEPT}
    answer = client.head(url, headers=headers)
    if answer.status_code == 401:
        headers["Authorization"] = f"Bearer {_token(client, answer.headers.get('www-authenticate', ''), ref)}"
        answer = client.head(url, headers=headers)
    if answer.status_code == 404:
        raise OperatorError(f"{ref.text}: the registry has no such tag; nothing written", 2)
    answer.raise_for_status()
    digest = str(answer.headers.get("docker-content-digest", ""))
    if not DIGEST.match(digest):
        raise OperatorError(f"{ref.text}: {ref.registry} answered without a digest; nothing written")
    return digest


def resolve(images: Iterable[str], transport: httpx.BaseTransport | None = None) -> dict[str, str]:
    """Each image's digest; ``OperatorError`` naming the registry that did not answer."""
    digests: dict[str, str] = {}
    with quiet("httpx", "httpcore"), httpx.Client(timeout=TIMEOUT_SECONDS, transport=transport) as client:
        for image in images:
            ref = parse(image)
            try:
                digests[image] = digest_of(client, ref)
            except httpx.HTTPError as exc:
                raise OperatorError(
                    f"cannot reach {ref.registry} for {image} ({type(exc).__name__}): offline? nothing written"
                ) from exc
    return digests


def render(digests: dict[str, str]) -> str:
    lines = [
        "# Written by `quartier images lock` from the tags in docker-compose.yml and Dockerfile; do not edit.",
        "# image<TAB>digest the registry served for that tag when this file was written",
    ]
    return "\n".join(lines + [f"{image}\t{digest}" for image, digest in digests.items()]) + "\n"


def lock_command(deploy: Path, transport: httpx.BaseTransport | None = None) -> str:
    images = images_in(deploy)
    digests = resolve(images, transport)
    (deploy / LOCK_NAME).write_text(render(digests), encoding="utf-8")
    return f"{len(digests)} images resolved: {deploy / LOCK_NAME}"
