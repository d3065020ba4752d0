"""`quartier erasures list|reapply`: the ledger of erased actors, and their erasure applied again
after a database restore, so that a restore never brings erased data back.

The ledger is the compacted topic quartier.actors. Compaction keeps the latest record of each key
(the actor id) for as long as the topic exists, and for an erased actor that record is its
``ActorErased``: an erased actor cannot be changed again, so nothing follows it. It carries ids
and a revision only, no name and no address. A restore of MongoDB does not touch Kafka, so the
ledger still lists every erasure made after the backup. (A ledger in a database of its own would
need a backup of its own, and its restore would be the same problem again.)

``reapply`` erases every actor of the ledger again, in two steps, each of which changes nothing
where the actor is erased already:
1. ``POST /actors/{id}/erasure`` (the role data_protection): the actors database, restored to
   before an erasure, erases the actor again and raises ``ActorErased`` anew. An actor erased in
   the restored database answers as before; one it does not know (registered after the backup)
   has nothing to erase there.
2. Each ledger record published again to quartier.actors as it is (its partition, key, value and
   headers, plus ``erasure.reapplied``), for the services whose databases were restored while
   actors' was not: conferences and notifications handle it as any ``ActorErased`` (a copy still
   erased changes nothing and confirms again with the same event id). It stays the latest record
   of its key, so the ledger is unchanged. This needs the admin principal (no service may write
   to quartier.actors but actors).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from quartier_shared.dead_letter_reading import REQUEST_TIMEOUT_MS, letter_consumer, read_to_end, topic_partitions
from quartier_shared.events import Envelope
from quartier_shared.kafka import KafkaPublisher, OutgoingMessage
from quartier_shared.topics import ACTORS_TOPIC

from .common import USAGE, Address, OperatorError, printable, quiet

ERASED = "ActorErased"
REAPPLIED_HEADER = "erasure.reapplied"
TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Erased:
    """One entry of the ledger: an actor id and when it was erased (ids only)."""

    actor_id: str
    erased_at: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Ledger:
    entries: list[Erased]
    records: dict[str, OutgoingMessage]  # by actor id: the ledger record, as it is republished


def _unreachable(kafka: Address, exc: BaseException) -> OperatorError:
    return OperatorError(f"cannot reach Kafka at {kafka.value} (from {kafka.source}): {type(exc).__name__}")


async def read_ledger(kafka: Address) -> Ledger:
    """The latest record of every key of quartier.actors that is an ``ActorErased``."""
    consumer = letter_consumer(kafka.value, kafka.security)
    try:
        await consumer.start()
        records = await read_to_end(consumer, await topic_partitions(consumer), ACTORS_TOPIC)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unreachable(kafka, exc) from exc
    finally:
        await consumer.stop()
    latest = {(r.key, r.partition): r for r in records}  # records come in offset order: the last one wins
    entries: list[Erased] = []
    messages: dict[str, OutgoingMessage] = {}
    for record in latest.values():
        if record.value is None:
            continue
        try:
            envelope = Envelope.model_validate_json(record.value)
        except ValidationError:
            continue  # not an event of ours: nothing the ledger can say about it
        if envelope.event_type != ERASED:
            continue
        actor_id = envelope.aggregate_id
        entries.append(Erased(actor_id, envelope.occurred_at.isoformat(), record.partition, record.offset))
        headers = [(k, v) for k, v in record.headers or () if k != REAPPLIED_HEADER]
        messages[actor_id] = OutgoingMessage(
            ACTORS_TOPIC, record.key, record.value, [*headers, (REAPPLIED_HEADER, b"true")], record.partition
        )
    entries.sort(key=lambda e: (e.erased_at, e.actor_id))
    return Ledger(entries, messages)


# --- list ---------------------------------------------------------------------------------------


def render(entries: Sequence[Erased], outcomes: dict[str, str] | None = None) -> str:
    if not entries:
        return f"no erased actor in {ACTORS_TOPIC}"
    rows = [["ACTOR ID", "ERASED AT", *(["ACTORS SERVICE"] if outcomes is not None else [])]]
    for e in entries:
        rows.append([printable(e.actor_id), e.erased_at, *([outcomes[e.actor_id]] if outcomes is not None else [])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def list_command(kafka: Address, as_json: bool) -> str:
    with quiet("aiokafka"):
        ledger = asyncio.run(read_ledger(kafka))
    if as_json:
        return json.dumps([asdict(e) for e in ledger.entries], indent=2)
    return render(ledger.entries)


# --- reapply ------------------------------------------------------------------------------------


def erase_in_actors(
    client: httpx.Client, actors_url: str, token: str, actor_id: str
) -> str:  # the outcome, in words for the table
    url = f"{actors_url}/actors/{actor_id}/erasure"
    try:
        response = client.post(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise OperatorError(f"actors at {actors_url} did not answer: {type(exc).__name__}") from exc
    if response.status_code in (401, 403):
        raise OperatorError(
            f"actors refused the token ({response.status_code}): it needs the role data_protection; "
            "nothing more erased",
            USAGE,
        )
    if response.status_code == 404:
        return "unknown there (registered after the backup)"
    if response.status_code != 200:
        raise OperatorError(f"actors answered {response.status_code} for an erasure; stopped")
    body: dict[str, Any] = response.json()
    return "erased" if body.get("actor_id") == actor_id else "answered without the actor"


async def _republish(kafka: Address, messages: list[OutgoingMessage]) -> None:
    async with KafkaPublisher(kafka.value, request_timeout_ms=REQUEST_TIMEOUT_MS, security=kafka.security) as publisher:
        outcomes = await publisher.publish_each(messages)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        raise OperatorError(
            f"Kafka took {len(outcomes) - len(failed)} of {len(outcomes)} ledger records again "
            f"({type(failed[0]).__name__}); run `quartier erasures reapply` again"
        )


def reapply_command(kafka: Address, actors_url: str, token: str, as_json: bool) -> str:
    with quiet("aiokafka"):
        ledger = asyncio.run(read_ledger(kafka))
    outcomes: dict[str, str] = {}
    with quiet("httpx", "httpcore"), httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        for entry in ledger.entries:
            outcomes[entry.actor_id] = erase_in_actors(client, actors_url, token, entry.actor_id)
    if ledger.entries:
        try:
            with quiet("aiokafka"):
                asyncio.run(_republish(kafka, [ledger.records[e.actor_id] for e in ledger.entries]))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise _unreachable(kafka, exc) from exc
    if as_json:
        return json.dumps([asdict(e) | {"actors_service": outcomes[e.actor_id]} for e in ledger.entries], indent=2)
    said = render(ledger.entries, outcomes)
    if ledger.entries:
        said += (
            f"\n{len(ledger.entries)} ActorErased published again to {ACTORS_TOPIC} for conferences and notifications"
        )
    return said
