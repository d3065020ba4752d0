"""`quartier dlq list` and `quartier dlq replay`: what the consumers gave up on, and sending it back.

Reading and replaying are ``quartier_shared.dead_letter_reading``'s (the services' operations
endpoints use the same): a consumer without a group, headers only, never a value. Here: where the
stack is, which offsets to replay, and the words an operator reads.

Two dead-letter topics (``--topic``): ``main``, quartier.dead-letters (the default), and
``contacts``, quartier.contacts.dead-letters, where contact events that failed go. A dead letter
there before its key's tombstone (an erased actor) is neither listed nor replayed: the shared
reading leaves it out, as it does for the operations endpoints.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime

from aiokafka.errors import KafkaError

from quartier_shared.dead_letter_reading import (
    REQUEST_TIMEOUT_MS,
    DeadLetter,
    RawDeadLetter,
    Replayed,
    letter_consumer,
    only_service,
    read,
    replay_message,
    topic_partitions,
)
from quartier_shared.dead_letters import DEAD_LETTER_TOPIC
from quartier_shared.kafka import KafkaPublisher
from quartier_shared.topics import CONTACTS_DEAD_LETTER_TOPIC

from .common import USAGE, Address, OperatorError, printable, quiet

__all__ = [
    "DLQ_TOPICS",
    "DeadLetter",
    "RawDeadLetter",
    "Replayed",
    "list_command",
    "read_dead_letters",
    "replay_command",
]

# The dead-letter topics by the name ``--topic`` takes: every one of ``DEAD_LETTER_TOPICS``.
DLQ_TOPICS = {"main": DEAD_LETTER_TOPIC, "contacts": CONTACTS_DEAD_LETTER_TOPIC}


def _unreachable(kafka: Address, exc: BaseException) -> OperatorError:
    hint = " (is `make run` still running?)" if kafka.source.endswith("stack.env") else ""
    return OperatorError(f"cannot reach Kafka at {kafka.value} (from {kafka.source}): {type(exc).__name__}{hint}")


async def read_dead_letters(kafka: Address, dlq_topic: str = DEAD_LETTER_TOPIC) -> list[RawDeadLetter]:
    consumer = letter_consumer(kafka.value, kafka.security)
    try:
        await consumer.start()
        return await read(consumer, await topic_partitions(consumer), dlq_topic)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unreachable(kafka, exc) from exc
    finally:
        await consumer.stop()


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


async def _publish(kafka: Address, chosen: list[RawDeadLetter], topics: dict[str, set[int]]) -> list[Replayed]:
    async with KafkaPublisher(kafka.value, request_timeout_ms=REQUEST_TIMEOUT_MS, security=kafka.security) as publisher:
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
    consumer = letter_consumer(kafka.value, kafka.security)
    try:
        await consumer.start()
        topics = await topic_partitions(consumer)
        chosen = choose(await read(consumer, topics, dlq_topic), offsets, service, dlq_topic)
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
        return await _publish(kafka, chosen, topics)
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
