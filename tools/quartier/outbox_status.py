"""`quartier outbox status`: how many events wait in each service's outbox, and for how long.

A growing count or an old oldest entry means a relay cannot reach Kafka (or its process is down):
the changes are safe in MongoDB, but nobody downstream has heard of them yet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, PyMongoError, ServerSelectionTimeoutError

from quartier_shared.outbox import backlog
from quartier_shared.services import SERVICES

from .common import USAGE, Address, OperatorError, printable, quiet, without_credentials

# The services' own databases (their MONGODB_DATABASE defaults), from the registry: tools import no service.
DEFAULT_DATABASES = tuple(service.database for service in SERVICES.values())
TIMEOUT_MS = 3000


@dataclass(frozen=True)
class OutboxStatus:
    database: str
    pending: int
    oldest_age_seconds: float | None


async def _status(db: Any, name: str, now: datetime) -> OutboxStatus:
    return OutboxStatus(name, *(await backlog(db, now)))


async def read_status(mongodb: Address, databases: Sequence[str]) -> list[OutboxStatus]:
    where = without_credentials(mongodb.value)
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongodb.value,
            serverSelectionTimeoutMS=TIMEOUT_MS,
            connectTimeoutMS=TIMEOUT_MS,
            socketTimeoutMS=2 * TIMEOUT_MS,
            tz_aware=True,
        )
    except ConfigurationError as exc:
        raise OperatorError(f"invalid MongoDB URI {where} (from {mongodb.source}): {exc}", USAGE) from exc
    try:
        now = datetime.now(UTC)
        return [await _status(client[name], name, now) for name in databases]
    except ServerSelectionTimeoutError as exc:
        hint = " (is `make run` still running?)" if mongodb.source.endswith("stack.env") else ""
        raise OperatorError(
            f"cannot reach MongoDB at {where} (from {mongodb.source}): no answer within {TIMEOUT_MS // 1000}s{hint}"
        ) from exc
    except PyMongoError as exc:
        detail = printable(str(exc).splitlines()[0] if str(exc) else "")[:200]
        raise OperatorError(f"MongoDB at {where} (from {mongodb.source}): {type(exc).__name__}: {detail}") from exc
    finally:
        await client.close()


def render_table(statuses: Sequence[OutboxStatus]) -> str:
    header = ("DATABASE", "PENDING", "OLDEST (s)")
    rows = [
        (s.database, str(s.pending), "-" if s.oldest_age_seconds is None else f"{s.oldest_age_seconds:.1f}")
        for s in statuses
    ]
    width = max(len(r[0]) for r in [header, *rows])
    return "\n".join(f"{r[0].ljust(width)}  {r[1]:>7}  {r[2]:>10}" for r in [header, *rows])


def status_command(mongodb: Address, databases: Sequence[str], as_json: bool) -> str:
    with quiet("pymongo"):
        statuses = asyncio.run(read_status(mongodb, databases))
    if as_json:
        return json.dumps([asdict(s) for s in statuses], indent=2)
    return render_table(statuses)
