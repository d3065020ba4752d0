"""`quartier privacy export ACTOR_ID [--out FILE]`: everything the three services hold about one
actor (GDPR Art. 15), gathered from their ``GET /actors/{id}/export`` endpoints, in one JSON file:

    {"format": "quartier-export/1", "actor_id": …, "exported_at": …,
     "actors": …, "conferences": …, "notifications": …}

Each service's part is what its endpoint answers (the actors service's own ``actors`` part out of
its document). The bearer token needs the role ``data_protection``: ``--token``, else
``QUARTIER_TOKEN``, else one minted for the running `make run` stack from its key in var/ (as
`quartier token` does). Service URLs: the flags, else ``QUARTIER_<SERVICE>_URL``, else make run's
ports. A service that does not answer, refuses the token or answers with an error ends the command
in one line naming that service; nothing is written then, so a file on disk is always complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from quartier_shared.auth import DATA_PROTECTION
from quartier_shared.services import SERVICES

from .common import UNREACHABLE, USAGE, OperatorError, quiet, read_stack_env

EXPORT_FORMAT = "quartier-export/1"
TOKEN_VARIABLE = "QUARTIER_TOKEN"  # noqa: S105 (the name of the variable, not a token)
TIMEOUT_SECONDS = 15.0
PARTS = ("actors", "conferences", "notifications")


def url_variable(service: str) -> str:
    return f"QUARTIER_{service.upper()}_URL"


def service_urls(flags: Mapping[str, str | None], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Per service: the flag, else ``QUARTIER_<SERVICE>_URL``, else make run's port on this machine."""
    env = os.environ if environ is None else environ
    return {
        name: (flags.get(name) or env.get(url_variable(name)) or f"http://127.0.0.1:{SERVICES[name].port}").rstrip("/")
        for name in PARTS
    }


def bearer_token(flag: str | None, var_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """``--token``, else ``QUARTIER_TOKEN``, else a data_protection token for the running `make run` stack."""
    env = os.environ if environ is None else environ
    if flag:
        return flag
    if env.get(TOKEN_VARIABLE):
        return env[TOKEN_VARIABLE]
    from .issuer import LocalIssuer

    issuer = LocalIssuer.from_env(read_stack_env(var_dir))
    if issuer is None:
        raise OperatorError(
            f"no token: pass --token or set {TOKEN_VARIABLE} (a token with the role {DATA_PROTECTION}), "
            f"or start `make run` (then one is made from its key in {var_dir})",
            USAGE,
        )
    return issuer.token([DATA_PROTECTION], [], subject=f"local-{DATA_PROTECTION}", minutes=5)


@dataclass(frozen=True)
class Gatherer:
    token: str
    urls: Mapping[str, str]
    timeout: float = TIMEOUT_SECONDS
    transport: httpx.BaseTransport | None = None  # tests answer in-process

    def gather(self, actor_id: str, now: datetime | None = None) -> dict[str, Any]:
        """The whole export document; ``OperatorError`` naming the service that failed."""
        with quiet("httpx", "httpcore"), httpx.Client(timeout=self.timeout, transport=self.transport) as client:
            parts = {service: self._part(client, service, actor_id) for service in PARTS}
        actors = parts["actors"].get("actors") if isinstance(parts["actors"], dict) else None
        if actors is None:
            raise OperatorError(f"actors at {self.urls['actors']} answered an export without its 'actors' part")
        return {
            "format": EXPORT_FORMAT,
            "actor_id": actor_id,
            "exported_at": (now or datetime.now(UTC)).isoformat(),
            "actors": actors,
            "conferences": parts["conferences"],
            "notifications": parts["notifications"],
        }

    def _part(self, client: httpx.Client, service: str, actor_id: str) -> Any:
        url = f"{self.urls[service]}/actors/{quote(actor_id, safe='')}/export"
        try:
            response = client.get(url, headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as exc:
            raise OperatorError(
                f"{service} at {self.urls[service]} did not answer ({type(exc).__name__}): is it running? "
                f"(--{service}-url or {url_variable(service)} say where it is)",
                UNREACHABLE,
            ) from None
        if response.status_code in (401, 403):
            raise OperatorError(
                f"{service} refused the token ({response.status_code}): it needs the role {DATA_PROTECTION}"
                " and must be valid for this stack",
                USAGE,
            )
        if response.status_code == 404 and service == "actors":
            raise OperatorError(f"actors knows no actor {actor_id!r}", USAGE)
        if response.status_code != 200:
            raise OperatorError(f"{service} at {self.urls[service]} answered {response.status_code}", UNREACHABLE)
        try:
            return response.json()
        except ValueError:
            raise OperatorError(f"{service} at {self.urls[service]} answered no JSON", UNREACHABLE) from None


def export_command(actor_id: str, out: Path | None, gatherer: Gatherer) -> str:
    """Writes the file (``--out``, else ``quartier-export-<actor id>.json`` here); returns what to print."""
    if not actor_id.strip():
        raise OperatorError("ACTOR_ID is empty", USAGE)
    document = gatherer.gather(actor_id)
    target = out or Path(f"quartier-export-{quote(actor_id, safe='')}.json")
    try:  # personal data: readable by its owner only
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as file:
            file.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    except OSError as exc:
        raise OperatorError(f"cannot write {target}: {exc.strerror}", USAGE) from None
    counts = (
        f"{len(document['conferences'].get('invitations', []))} invitation(s), "
        f"{len(document['notifications'].get('deliveries', []))} deliveries"
    )
    return f"wrote {target}: the export of actor {actor_id} from actors, conferences and notifications ({counts})"
