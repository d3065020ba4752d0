"""Consuming events: batches, per-key order, retries, dead letters, commit after processing.

One ``EventConsumer`` per service and consumer group. FastStream hands it a batch of raw records;
the offsets of the batch are committed only after every record in it was handled or
dead-lettered (AckPolicy.NACK_ON_ERROR: never ACK_FIRST, which is at-most-once).

- Records with the same key are handled in order; different keys run concurrently.
- A record that cannot be parsed, or has an unknown major version, goes to the dead-letter
  topic at once. A handler that keeps failing is retried with exponential backoff and then
  dead-lettered, so one poison message never blocks its partition.
- While a dependency (MongoDB) is unreachable, the handler waits and retries without limit and
  nothing is committed: the service catches up once the dependency is back.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import ValidationError

from .events import DEAD_LETTER_TOPIC, Envelope, Event, UnknownEventVersion, parse_payload
from .kafka import KafkaPublisher, OutgoingMessage
from .logging import bound_contextvars, get_logger, redact
from .mongo import EventContext, is_unavailable
from .settings import ServiceSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class Delivery:
    """An event as a handler receives it, with what it needs to cause further events."""

    envelope: Envelope

    def context(self, producer: str) -> EventContext:
        return EventContext(producer, self.envelope.correlation_id, causation_id=self.envelope.event_id)


Handler = Callable[[Any, Delivery], Awaitable[None]]
Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information


class PoisonMessage(Exception):
    """A message no retry can fix: dead-letter it now."""


class EventConsumer:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        broker: KafkaBroker,
        publisher: KafkaPublisher,
        group_id: str,
        topics: Sequence[str],
        handlers: Mapping[type[Event], Handler],
        concurrency: int = 64,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.handlers = dict(handlers)
        self._limit = asyncio.Semaphore(concurrency)
        broker.subscriber(
            *topics,
            group_id=group_id,
            batch=True,
            max_records=settings.kafka_max_batch,
            batch_timeout_ms=settings.kafka_fetch_max_wait_ms,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            title=f"{group_id}:consume",
        )(self.on_batch)

    async def on_batch(self, message: KafkaMessage) -> None:
        records: Sequence[Record] = message.raw_message
        by_key: dict[tuple[str, int, bytes | None], list[Record]] = defaultdict(list)
        for record in records:
            by_key[(record.topic, record.partition, record.key)].append(record)
        await asyncio.gather(*(self._in_order(group) for group in by_key.values()))

    async def _in_order(self, records: list[Record]) -> None:
        async with self._limit:
            for record in records:
                await self.process(record)

    async def process(self, record: Record) -> None:
        try:
            envelope = Envelope.model_validate_json(record.value)
            event = parse_payload(envelope)
        except (ValidationError, UnknownEventVersion, ValueError) as exc:
            await self.dead_letter(record, exc)
            return
        handler = self.handlers.get(type(event)) if event is not None else None
        if event is None or handler is None:
            return  # not an event this service reacts to
        with bound_contextvars(
            correlation_id=envelope.correlation_id,
            event_id=envelope.event_id,
            event_type=envelope.event_type,
        ):
            await self._handle(handler, event, Delivery(envelope), record)

    async def _handle(self, handler: Handler, event: Event, delivery: Delivery, record: Record) -> None:
        attempt = 0
        while True:
            try:
                await handler(event, delivery)
                return
            except PoisonMessage as exc:
                await self.dead_letter(record, exc)
                return
            except Exception as exc:
                wait = self._backoff(attempt)
                if is_unavailable(exc):
                    # Not this message's fault: wait for the database without committing.
                    log.warning("dependency_unavailable", error=type(exc).__name__, retry_in_s=wait)
                    attempt = min(attempt + 1, 6)
                else:
                    attempt += 1
                    if attempt >= self.settings.handler_max_attempts:
                        await self.dead_letter(record, exc)
                        return
                    log.warning("handler_retrying", error=type(exc).__name__, attempt=attempt, retry_in_s=wait)
                await asyncio.sleep(wait)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.settings.handler_backoff_seconds * 2**attempt, 30.0))

    async def dead_letter(self, record: Record, exc: BaseException) -> None:
        # A replayed message that fails again keeps its link to the dead letter it came from.
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.") or k == "dlq.replayed_from"]
        headers += [
            ("dlq.original_topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.service", self.settings.service_name.encode()),
            ("dlq.error_class", type(exc).__name__.encode()),
            ("dlq.error_message", redact(describe_error(exc), limit=1000).encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self.publisher.publish(
            [OutgoingMessage(topic=DEAD_LETTER_TOPIC, key=record.key, value=record.value or b"", headers=headers)]
        )
        log.error(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=type(exc).__name__,
            reason=redact(describe_error(exc)),
        )


def describe_error(exc: BaseException) -> str:
    """A reason an operator can act on, without echoing the message's (personal) data."""
    if isinstance(exc, ValidationError):
        problems = exc.errors(include_input=False, include_url=False)
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in problems)[:1000]
    return str(exc)[:1000]
