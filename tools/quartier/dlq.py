"""`quartier dlq list` and `quartier dlq replay`: what the consumers gave up on, and sending it back.

The dead-letter topic is read with a plain consumer without a group: an operator looking must not
commit offsets or join a group that a service uses. Only headers are shown, never a value: values
are events with names and e-mail addresses in them.

Two dead-letter topics (``--topic``): ``main``, quartier.dead-letters (the default), and
``contacts``, quartier.contacts.dead-letters, where contact events that failed go. The latter is
compacted and gets a tombstone under an actor's id when the actor is erased: a dead letter
before its key's tombstone is as good as deleted (compaction will remove it), so it is neither
listed nor replayed, which would bring the erased name and address back onto the contact topic.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from quartier_shared import dead_letters as dlq
from quartier_shared.dead_letters import DEAD_LETTER_TOPIC
from quartier_shared.kafka import KafkaPublisher, OutgoingMessage
from quartier_shared.logging import redact
from quartier_shared.topics import CONTACTS_DEAD_LETTER_TOPIC

from .common import USAGE, Address, OperatorError, printable, quiet

REQUEST_TIMEOUT_MS = 5000
# Reading stops with an error when records are due but none arrived for this long.
STALL_SECONDS = 10.0
# The dead-letter topics by the name ``--topic`` takes.
DLQ_TOPICS = {"main": DEAD_LETTER_TOPIC, "contacts": CONTACTS_DEAD_LETTER_TOPIC}


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


def _consumer(bootstrap: str) -> Any:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        fetch_max_wait_ms=100,
    )


async def topic_partitions(consumer: Any) -> dict[str, set[int]]:
    """Every topic with its partitions, from one metadata request.

    aiokafka's public ``topics()`` keeps only the names, and ``partitions_for_topic`` knows only the
    topics the consumer tracks; the client's ``fetch_all_metadata`` has both.
    """
    cluster = await consumer._client.fetch_all_metadata()
    return {str(t): {int(p) for p in cluster.partitions_for_topic(t) or ()} for t in cluster.topics()}


async def _read(consumer: Any, topics: dict[str, set[int]], dlq_topic: str = DEAD_LETTER_TOPIC) -> list[RawDeadLetter]:
    """Every dead letter from the start up to the end offsets of now, then stop (no waiting for more).

    The end is the larger of ListOffsets and the high watermark of the first fetch: Tansu answers
    ListOffsets with the base offset of the last record batch plus one, which falls short when a
    producer sent several dead letters in one batch. An empty partition still ends at once.
    """
    partitions = [TopicPartition(dlq_topic, p) for p in sorted(topics.get(dlq_topic, ()))]
    if not partitions:
        return []  # no service has started yet on this broker
    consumer.assign(partitions)
    start: dict[Any, int] = await consumer.beginning_offsets(partitions)
    end: dict[Any, int] = dict(await consumer.end_offsets(partitions))
    remaining = {tp for tp in partitions if end[tp] > start[tp]}
    for tp in remaining:
        consumer.seek(tp, start[tp])
    watermark_seen: set[Any] = set()
    letters: list[RawDeadLetter] = []
    last_progress = time.monotonic()
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp in remaining - watermark_seen:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                end[tp] = max(end[tp], highwater)
                watermark_seen.add(tp)
        for tp, records in batch.items():
            for r in records:
                if r.offset >= end[tp]:
                    continue
                if r.value is None:  # a tombstone: what came before under its key is erased
                    letters = [d for d in letters if (d.letter.dlq_partition, d.key) != (r.partition, r.key)]
                    continue
                letters.append(from_record(r.partition, r.offset, r.key, r.value, r.headers))
        for tp in list(remaining):
            if tp in watermark_seen and await consumer.position(tp) >= end[tp]:  # also past gaps in the log
                remaining.discard(tp)
        if batch:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            raise TimeoutError(f"no records arrived for {STALL_SECONDS:.0f}s")
    return sorted(letters, key=lambda d: (d.letter.dlq_partition, d.letter.dlq_offset))


def _unreachable(kafka: Address, exc: BaseException) -> OperatorError:
    hint = " (is `make run` still running?)" if kafka.source.endswith("stack.env") else ""
    return OperatorError(f"cannot reach Kafka at {kafka.value} (from {kafka.source}): {type(exc).__name__}{hint}")


async def read_dead_letters(kafka: Address, dlq_topic: str = DEAD_LETTER_TOPIC) -> list[RawDeadLetter]:
    consumer = _consumer(kafka.value)
    try:
        await consumer.start()
        return await _read(consumer, await topic_partitions(consumer), dlq_topic)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unreachable(kafka, exc) from exc
    finally:
        await consumer.stop()


def only_service(letters: Iterable[RawDeadLetter], service: str | None) -> list[RawDeadLetter]:
    return [d for d in letters if service is None or d.letter.service == service]


# --- list ---------------------------------------------------------------------------------------


def _when(failed_at: str | None) -> str:
    if not failed_at:
        return "-"
    try:
        return datetime.fromisoformat(failed_at).strftime("%Y-%m-%d %H:%M:%S%z")
    except ValueError:
        return failed_at


def _origin(d: DeadLetter) -> str:
    partition = "?" if d.original_partition is None else d.original_partition
    offset = "?" if d.original_offset is None else d.original_offset
    return f"{d.original_topic or '?'}[{partition}]@{offset}"


def render_table(letters: Sequence[DeadLetter], message_width: int = 100) -> str:
    """One row per dead letter; long error messages are cut (`--json` has them in full)."""
    header = ["OFFSET", "FAILED AT", "SERVICE", "ORIGIN topic[partition]@offset", "ERROR", "EVENT TYPE", "MESSAGE"]
    rows = [header] + [
        [
            printable(cell)
            for cell in (
                str(d.dlq_offset),
                _when(d.failed_at),
                d.service or "-",
                _origin(d),
                d.error_class or "-",
                d.event_type or "-",
                d.error_message or "-",
            )
        ]
        for d in letters
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for *cells, message in rows:
        cut = message if len(message) <= message_width else message[: message_width - 1] + "…"
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)) + "  " + cut)
    return "\n".join(lines)


def list_command(kafka: Address, service: str | None, as_json: bool, dlq_topic: str = DEAD_LETTER_TOPIC) -> str:
    with quiet("aiokafka"):
        letters = only_service(asyncio.run(read_dead_letters(kafka, dlq_topic)), service)
    if as_json:
        return json.dumps([d.letter.summary() for d in letters], indent=2, ensure_ascii=False)
    if not letters:
        return f"no dead letters in {dlq_topic}" + (f" from {service}" if service else "")
    return render_table([d.letter for d in letters])


# --- replay -------------------------------------------------------------------------------------


def choose(
    letters: list[RawDeadLetter], offsets: Sequence[int] | None, service: str | None, dlq_topic: str = DEAD_LETTER_TOPIC
) -> list[RawDeadLetter]:
    """The dead letters to replay; an offset that does not name one fails the whole command."""
    if offsets is None:
        return only_service(letters, service)
    by_offset: dict[int, list[RawDeadLetter]] = {}
    for d in letters:
        by_offset.setdefault(d.letter.dlq_offset, []).append(d)
    unknown = sorted({o for o in offsets if o not in by_offset})
    if unknown:
        known = (
            f"offsets {letters[0].letter.dlq_offset}-{letters[-1].letter.dlq_offset} exist"
            if letters
            else "it is empty"
        )
        missing = ", ".join(map(str, unknown))
        raise OperatorError(f"no dead letter at offset {missing} in {dlq_topic} ({known}); nothing replayed", USAGE)
    chosen: list[RawDeadLetter] = []
    for offset in dict.fromkeys(offsets):  # each once, in the order given
        matches = by_offset[offset]
        if len(matches) > 1:
            raise OperatorError(f"offset {offset} exists in several dead-letter partitions; nothing replayed", USAGE)
        d = matches[0]
        if service is not None and d.letter.service != service:
            raise OperatorError(
                f"offset {offset} is a dead letter of {d.letter.service or 'an unknown service'}, not {service}; "
                "nothing replayed",
                USAGE,
            )
        chosen.append(d)
    return chosen


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


@dataclass(frozen=True)
class Replayed:
    dlq_offset: int
    topic: str
    partition: int
    offset: int


async def _publish(bootstrap: str, chosen: list[RawDeadLetter], topics: dict[str, set[int]]) -> list[Replayed]:
    async with KafkaPublisher(bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS) as publisher:
        results = await publisher.publish_each([replay_message(d, topics) for d in chosen])
    done = [
        Replayed(d.letter.dlq_offset, r.topic, r.partition, r.offset)
        for d, r in zip(chosen, results, strict=True)
        if not isinstance(r, BaseException)
    ]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise OperatorError(
            f"Kafka confirmed {len(done)} of {len(chosen)} replays ({type(failed[0]).__name__}); "
            f"replayed: {', '.join(str(r.dlq_offset) for r in done) or 'none'}"
        )
    return done


async def replay(
    kafka: Address, offsets: Sequence[int] | None, service: str | None, dlq_topic: str = DEAD_LETTER_TOPIC
) -> list[Replayed]:
    consumer = _consumer(kafka.value)
    try:
        await consumer.start()
        topics = await topic_partitions(consumer)
        chosen = choose(await _read(consumer, topics, dlq_topic), offsets, service, dlq_topic)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unreachable(kafka, exc) from exc
    finally:
        await consumer.stop()
    for d in chosen:  # check every one before publishing any
        if d.letter.original_topic is None:
            raise OperatorError(f"offset {d.letter.dlq_offset} names no original topic; nothing replayed", USAGE)
        if d.letter.original_topic not in topics:
            raise OperatorError(
                f"offset {d.letter.dlq_offset}: topic {d.letter.original_topic} does not exist; nothing replayed", USAGE
            )
    if not chosen:
        return []
    try:
        return await _publish(kafka.value, chosen, topics)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unreachable(kafka, exc) from exc


def replay_command(
    kafka: Address, offsets: Sequence[int] | None, service: str | None, dlq_topic: str = DEAD_LETTER_TOPIC
) -> str:
    with quiet("aiokafka"):
        done = asyncio.run(replay(kafka, offsets, service, dlq_topic))
    if not done:
        return "nothing to replay" + (f": no dead letters from {service}" if service else "")
    lines = [f"replayed {len(done)} dead letter{'s' if len(done) != 1 else ''}:"]
    lines += [f"  offset {r.dlq_offset} -> {r.topic}[{r.partition}]@{r.offset}" for r in done]
    return "\n".join(lines)
