"""Reading and replaying the dead-letter topics, for the operators' ``quartier dlq`` and each
service's ``/operations/dead-letters`` endpoints alike.

A dead letter is described by its headers only (``DeadLetter``): where it came from, which service
gave up, the error class and the error message with addresses taken out, the event type. Its value
(an event with names and e-mail addresses in it) stays in memory for a replay and is never shown.
The topic is read with a consumer without a group, which commits nothing and joins no group a
service uses. The main dead-letter topic is the default; another one of ``DEAD_LETTER_TOPICS`` can
be named.

The contact events' dead-letter topic (quartier.contacts.dead-letters) is compacted and gets a
tombstone under an actor's id when the actor is erased: a dead letter before its key's tombstone is
as good as deleted (compaction will remove it), so ``read`` leaves it out, and what is not read is
neither listed nor replayed: a replay would bring the erased name and address back onto the
contact topic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream.security import BaseSecurity

from . import dead_letters as dlq
from .dead_letters import DEAD_LETTER_TOPIC
from .kafka import OutgoingMessage, client_kwargs
from .logging import redact

REQUEST_TIMEOUT_MS = 5000
# Reading stops with an error when records are due but none arrived for this long.
STALL_SECONDS = 10.0


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic, as its headers describe it."""

    dlq_partition: int
    dlq_offset: int
    failed_at: str | None
    service: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    error_class: str | None
    error_message: str | None
    event_type: str | None

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RawDeadLetter:
    """A dead letter with what a replay needs; the value stays in memory and is never printed."""

    letter: DeadLetter
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _int(value: bytes | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def from_record(partition: int, offset: int, key: bytes | None, value: bytes | None, headers: Any) -> RawDeadLetter:
    pairs: tuple[tuple[str, bytes], ...] = tuple((str(k), bytes(v or b"")) for k, v in (headers or ()))
    found = dict(pairs)  # the consumer writes each dead-letter header once; the last one wins otherwise
    message = _text(found.get(dlq.ERROR_MESSAGE))
    letter = DeadLetter(
        dlq_partition=partition,
        dlq_offset=offset,
        failed_at=_text(found.get(dlq.FAILED_AT)),
        service=_text(found.get(dlq.SERVICE)),
        original_topic=_text(found.get(dlq.ORIGINAL_TOPIC)),
        original_partition=_int(found.get(dlq.PARTITION)),
        original_offset=_int(found.get(dlq.OFFSET)),
        error_class=_text(found.get(dlq.ERROR_CLASS)),
        # The consumer leaves the input out of validation errors; a handler's own message might
        # still quote an address, so addresses are taken out here as well.
        error_message=None if message is None else redact(message, limit=1000),
        event_type=_text(found.get("event_type")),
    )
    return RawDeadLetter(letter, key, value or b"", pairs)


def letter_consumer(bootstrap: str, security: BaseSecurity | None = None) -> Any:
    """A consumer without a group (it commits nothing); started by the caller."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        fetch_max_wait_ms=100,
        **client_kwargs(security),
    )


async def topic_partitions(consumer: Any) -> dict[str, set[int]]:
    """Every topic with its partitions, from one metadata request.

    aiokafka's public ``topics()`` keeps only the names, and ``partitions_for_topic`` knows only the
    topics the consumer tracks; the client's ``fetch_all_metadata`` has both.
    """
    cluster = await consumer._client.fetch_all_metadata()
    return {str(t): {int(p) for p in cluster.partitions_for_topic(t) or ()} for t in cluster.topics()}


async def read_to_end(consumer: Any, topics: dict[str, set[int]], topic: str) -> list[ConsumerRecord[Any, Any]]:
    """Every record of ``topic`` from the start up to the end offsets of now, then stop (no waiting
    for more), partition by partition in offset order.

    The end is the larger of ListOffsets and the high watermark of the first fetch: Tansu answers
    ListOffsets with the base offset of the last record batch plus one, which falls short when a
    producer sent several records in one batch. An empty partition still ends at once.
    """
    partitions = [TopicPartition(topic, p) for p in sorted(topics.get(topic, ()))]
    if not partitions:
        return []  # no service has started yet on this broker
    consumer.assign(partitions)
    start: dict[Any, int] = await consumer.beginning_offsets(partitions)
    end: dict[Any, int] = dict(await consumer.end_offsets(partitions))
    remaining = {tp for tp in partitions if end[tp] > start[tp]}
    for tp in remaining:
        consumer.seek(tp, start[tp])
    watermark_seen: set[Any] = set()
    records: list[ConsumerRecord[Any, Any]] = []
    last_progress = time.monotonic()
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp in remaining - watermark_seen:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                end[tp] = max(end[tp], highwater)
                watermark_seen.add(tp)
        for tp, fetched in batch.items():
            records += [r for r in fetched if r.offset < end[tp]]
        for tp in list(remaining):
            if tp in watermark_seen and await consumer.position(tp) >= end[tp]:  # also past gaps in the log
                remaining.discard(tp)
        if batch:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            raise TimeoutError(f"no records arrived for {STALL_SECONDS:.0f}s")
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def read(consumer: Any, topics: dict[str, set[int]], topic: str = DEAD_LETTER_TOPIC) -> list[RawDeadLetter]:
    """Every dead letter from the start up to the end offsets of now (``read_to_end``). A tombstone
    (a key without a value) takes out the dead letters before it under its key in its partition,
    and is no dead letter itself."""
    letters: list[RawDeadLetter] = []
    for r in await read_to_end(consumer, topics, topic):
        if r.value is None:  # a tombstone: what came before under its key is erased
            letters = [d for d in letters if (d.letter.dlq_partition, d.key) != (r.partition, r.key)]
            continue
        letters.append(from_record(r.partition, r.offset, r.key, r.value, r.headers))
    return letters


def only_service(letters: Iterable[RawDeadLetter], service: str | None) -> list[RawDeadLetter]:
    return [d for d in letters if service is None or d.letter.service == service]


def replay_message(d: RawDeadLetter, topics: dict[str, set[int]]) -> OutgoingMessage:
    """The original record, to its original topic and partition, with the original headers: the
    dead-letter ones go, and the replay names where it came from."""
    topic = d.letter.original_topic
    assert topic is not None  # checked by the caller
    # The original partition keeps the record beside the others of its key.
    partition = d.letter.original_partition if d.letter.original_partition in topics[topic] else None
    headers = [(k, v) for k, v in d.headers if not k.startswith(dlq.PREFIX)]
    headers.append((dlq.REPLAYED_FROM, str(d.letter.dlq_offset).encode()))
    return OutgoingMessage(topic, d.key, d.value, headers, partition)


def original_record(d: RawDeadLetter) -> ConsumerRecord:
    """The original record as its consumer read it, for handling it again in the service
    (``EventConsumer.handle_again``): the original topic, partition and offset, the key and value,
    the original headers without the dead-letter ones, and the link to the dead letter, which a
    second dead letter keeps."""
    topic = d.letter.original_topic
    assert topic is not None  # checked by the caller
    headers = [(k, v) for k, v in d.headers if not k.startswith(dlq.PREFIX)]
    headers.append((dlq.REPLAYED_FROM, str(d.letter.dlq_offset).encode()))
    partition = -1 if d.letter.original_partition is None else d.letter.original_partition
    offset = -1 if d.letter.original_offset is None else d.letter.original_offset
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=-1,
        timestamp_type=0,
        key=d.key,
        value=d.value,
        checksum=None,
        serialized_key_size=-1 if d.key is None else len(d.key),
        serialized_value_size=len(d.value),
        headers=tuple(headers),
    )


@dataclass(frozen=True)
class Replayed:
    dlq_offset: int
    topic: str
    partition: int
    offset: int
