"""Consuming events: batches, per-key order, retries, dead letters, commit after processing.

One ``EventConsumer`` per service and consumer group. FastStream hands it a batch of raw records;
the offsets of the batch are committed only after every record in it was handled or
dead-lettered (AckPolicy.NACK_ON_ERROR; acknowledging on receipt would be at-most-once).

- Records with the same key are handled in order; different keys run concurrently.
- A record that cannot be parsed, or has an unknown major version, goes to the dead-letter
  topic at once (contact events to a dead-letter topic of their own: they hold names and
  addresses, ``topics.dead_letter_topic_for``). A tombstone (a key without a value, which deletes
  that key on a compacted topic) is no event: it is skipped. So is a retired major version.
- A handler that keeps failing is retried with exponential backoff and then dead-lettered, so
  one poison message never blocks its partition.
- While a dependency (MongoDB) is unreachable, the handler waits and retries without limit and
  nothing is committed: the service catches up once the dependency is back.
- ``handle_again`` runs one record that is not consumed from Kafka (a dead letter's original
  record, for the operators' replay) through the same decoding, handler and retries; a second
  failure is dead-lettered again, as a consumed record's would be. Handlers are idempotent, so a
  record handled before may be handled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity
from pydantic import ValidationError

from . import dead_letters as dlq
from .events import Envelope, Event, EventContext, UnknownEventVersion, event_types_of, parse_payload
from .kafka import KafkaPublisher, OutgoingMessage, client_kwargs
from .logging import bound_contextvars, get_logger, redact
from .metrics import DEAD_LETTERS, EVENTS_CONSUMED, HANDLER_SECONDS
from .mongo import is_unavailable
from .retry import Retry
from .settings import ServiceSettings
from .topics import TOPIC_PARTITIONS, dead_letter_topic_for

log = get_logger(__name__)
# How long a lag question may take (a scrape, GET /operations/consumers) before it gives up.
LAG_SECONDS = 5.0


Record: TypeAlias = ConsumerRecord  # aiokafka ships no type information
EventT_co = TypeVar("EventT_co", bound=Event, covariant=True)


@dataclass(frozen=True)
class Received(Generic[EventT_co]):
    """An event as a handler receives it: typed, with its envelope, the raw record, and the
    context of the events the handler causes in answer (this service as producer, the same
    correlation id, this event as their cause)."""

    event: EventT_co
    envelope: Envelope
    context: EventContext
    record: Record


class Outcome(StrEnum):
    """What became of a record: handled, dead-lettered, or skipped (no event for this consumer:
    a tombstone, a retired major version, a type it does not handle). ``FAILED`` only for a whole
    batch that keeps failing, before it is split."""

    HANDLED = "handled"
    DEAD_LETTERED = "dead_lettered"
    SKIPPED = "skipped"
    FAILED = "failed"


Handler = Callable[[Received[Any]], Awaitable[None]]
BatchHandler = Callable[[list[Received[Any]]], Awaitable[None]]


class EventConsumer:
    """``handlers`` take one event at a time (in key order); ``batch_handlers`` take all events
    of their type in a batch at once, so they can read and write with a few round trips instead
    of a few per event. A batch that keeps failing is retried one event at a time, so only the
    poison one is dead-lettered."""

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        broker: KafkaBroker,
        publisher: KafkaPublisher,
        group_id: str,
        handlers: Mapping[type[Event], Handler] | None = None,
        batch_handlers: Mapping[type[Event], BatchHandler] | None = None,
        concurrency: int = 64,
        security: BaseSecurity | None = None,
    ) -> None:
        """Subscribes ``group_id`` to the topics of the event types handled (each event names its
        topic, so a new handler cannot be wired to a topic nobody reads)."""
        self.settings = settings
        self.publisher = publisher
        self.group_id = group_id
        self.security = security  # for the lag's own client (``lag``)
        # A handler may be registered for a base class (ActorEvent): it receives each event type of it.
        self.handlers = {t: h for kind, h in (handlers or {}).items() for t in event_types_of(kind)}
        self.batch_handlers = {t: h for kind, h in (batch_handlers or {}).items() for t in event_types_of(kind)}
        self._limit = asyncio.Semaphore(concurrency)
        backoff = settings.handler_backoff_seconds
        # A failing handler is retried a few times, then its message is dead-lettered ...
        self._bounded = Retry(backoff, cap=30.0, attempts=settings.handler_max_attempts)
        # ... but a database that is away is not the message's fault: wait for it, commit nothing.
        self._waiting = Retry(backoff, cap=30.0, transient=is_unavailable)
        self.event_types = [*self.handlers, *self.batch_handlers]
        topics = dict.fromkeys(kind.topic for kind in self.event_types)
        self.subscriber = broker.subscriber(
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
            description="Consumes "
            + ", ".join(sorted(t.__name__ for t in self.event_types))
            + "; other event types on these topics are skipped.",
        )
        self.subscriber(self.on_batch)

    async def on_batch(self, message: KafkaMessage) -> None:
        records: Sequence[Record] = message.raw_message
        by_key: dict[tuple[str, int, bytes | None], list[Received[Event]]] = defaultdict(list)
        by_type: dict[type[Event], list[Received[Event]]] = defaultdict(list)
        for record in records:
            received = await self.decode(record)
            if received is None:
                continue
            if type(received.event) in self.batch_handlers:
                by_type[type(received.event)].append(received)
            elif type(received.event) in self.handlers:
                by_key[(record.topic, record.partition, record.key)].append(received)
        await asyncio.gather(
            *(self._in_order(group) for group in by_key.values()),
            *(self._as_batch(self.batch_handlers[kind], items) for kind, items in by_type.items()),
        )

    async def handle_again(self, record: Record) -> Outcome:
        """Run ``record`` (not consumed from Kafka: a dead letter's original record) through the
        handler of its event type, with the retries of a consumed record. Unreadable or failing
        again, it is dead-lettered again (``dead_letter``); nothing is committed either way."""
        decoded = self._parsed(record)
        if isinstance(decoded, Exception):
            await self.dead_letter(record, decoded)
            return Outcome.DEAD_LETTERED
        if decoded is None:
            return Outcome.SKIPPED
        kind = type(decoded.event)
        if kind in self.batch_handlers:
            [outcome] = await self._as_batch(self.batch_handlers[kind], [decoded])
        elif kind in self.handlers:
            [outcome] = await self._in_order([decoded])
        else:
            return Outcome.SKIPPED
        return outcome

    async def decode(self, record: Record) -> Received[Event] | None:
        """The typed event, or None when it is not for us or was dead-lettered as unreadable."""
        decoded = self._parsed(record)
        if isinstance(decoded, Exception):
            await self.dead_letter(record, decoded)
            return None
        return decoded

    def _parsed(self, record: Record) -> Received[Event] | Exception | None:
        """The typed event; None when it is not for us; the error when it cannot be read."""
        if record.value is None:
            return None  # a tombstone: what it deletes, the event that caused it said already
        try:
            envelope = Envelope.model_validate_json(record.value)
            event = parse_payload(envelope)
        except (ValidationError, UnknownEventVersion, ValueError) as exc:
            return exc
        if event is None:
            return None
        context = EventContext(
            self.settings.service_name,
            envelope.correlation_id,
            causation_id=envelope.event_id,
            initiated_by=envelope.initiated_by,
        )
        return Received(event, envelope, context, record)

    async def _in_order(self, items: list[Received[Event]]) -> list[Outcome]:
        """Each item's outcome, in order."""
        outcomes = []
        async with self._limit:
            for item in items:
                handler = self.handlers[type(item.event)]
                kind = type(item.event).__name__
                with _bound(item), HANDLER_SECONDS.labels(kind).time():
                    outcomes.append(await self._retrying(functools.partial(handler, item), item))
                EVENTS_CONSUMED.labels(kind).inc()
        return outcomes

    async def _as_batch(self, handler: BatchHandler, items: list[Received[Event]]) -> list[Outcome]:
        """Each item's outcome, in order."""
        kind = type(items[0].event).__name__
        with HANDLER_SECONDS.labels(kind).time():
            outcomes = await self._batch_or_one_by_one(handler, items)
        EVENTS_CONSUMED.labels(kind).inc(len(items))
        return outcomes

    async def _batch_or_one_by_one(self, handler: BatchHandler, items: list[Received[Event]]) -> list[Outcome]:
        if len(items) == 1:
            with _bound(items[0]):
                return [await self._retrying(functools.partial(handler, items), items[0])]
        if await self._retrying(functools.partial(handler, items), None) is Outcome.HANDLED:
            return [Outcome.HANDLED] * len(items)
        log.warning("batch_failed_retrying_one_by_one", size=len(items))
        outcomes = []
        for item in items:
            with _bound(item):
                outcomes.append(await self._retrying(functools.partial(handler, [item]), item))
        return outcomes

    async def _retrying(self, call: Callable[[], Awaitable[None]], item: Received[Event] | None) -> Outcome:
        """Run ``call`` until it succeeds (HANDLED). When it keeps failing, dead-letter ``item``
        (DEAD_LETTERED); without an item (a whole batch), return FAILED and let the caller split
        the batch."""
        try:
            await self._bounded.run(lambda: self._waiting.run(call, event="dependency_unavailable"))
            return Outcome.HANDLED
        except Exception as exc:
            if item is None:
                return Outcome.FAILED
            await self.dead_letter(item.record, exc)
            return Outcome.DEAD_LETTERED

    async def lag(self) -> dict[str, int]:
        """Records of each topic this consumer group has not committed yet, over all partitions
        of the topic (the group's, not only this instance's): the end of each partition less the
        group's committed offset (its start when the group committed nothing there). Offsets are
        committed only after handling, so the lag grows while the group is stopped or stuck (a
        handler waiting for MongoDB has fetched records it has not committed), where the fetch
        position would say it is near zero.

        The end is the larger of ListOffsets and the high watermark of this instance's last fetch
        (for its assigned partitions): Tansu answers ListOffsets with the base offset of the last
        record batch plus one, short after a batch of several records. One short-lived client
        asks, under the group's id without joining the group; it raises when Kafka does not
        answer within ``LAG_SECONDS``."""
        partitions = [
            TopicPartition(t, p)
            for t in dict.fromkeys(k.topic for k in self.event_types)
            for p in range(TOPIC_PARTITIONS[t])
        ]
        own = getattr(self.subscriber, "consumer", None)
        watermarks = {tp: own.highwater(tp) or 0 for tp in own.assignment()} if own is not None else {}
        offsets = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            request_timeout_ms=int(LAG_SECONDS * 1000),
            **client_kwargs(self.security),
        )
        lag: dict[str, int] = defaultdict(int)
        try:
            async with asyncio.timeout(LAG_SECONDS):
                await offsets.start()
                start = await offsets.beginning_offsets(partitions)
                end = await offsets.end_offsets(partitions)
                for tp in partitions:
                    last = max(end[tp], watermarks.get(tp, 0))
                    committed = await offsets.committed(tp)
                    lag[tp.topic] += max(last - (start[tp] if committed is None else committed), 0)
        finally:
            await offsets.stop()
        return dict(lag)

    async def dead_letter(self, record: Record, exc: BaseException) -> None:
        # A replayed message that fails again keeps its link to the dead letter it came from.
        kept = [(k, v) for k, v in (record.headers or ()) if not k.startswith(dlq.PREFIX) or k == dlq.REPLAYED_FROM]
        headers = [
            *kept,
            (dlq.ORIGINAL_TOPIC, record.topic.encode()),
            (dlq.PARTITION, str(record.partition).encode()),
            (dlq.OFFSET, str(record.offset).encode()),
            (dlq.SERVICE, self.settings.service_name.encode()),
            (dlq.ERROR_CLASS, type(exc).__name__.encode()),
            (dlq.ERROR_MESSAGE, redact(describe_error(exc), limit=1000).encode()),
            (dlq.FAILED_AT, datetime.now(UTC).isoformat().encode()),
        ]
        await self.publisher.publish(
            [
                OutgoingMessage(
                    topic=dead_letter_topic_for(record.topic), key=record.key, value=record.value, headers=headers
                )
            ]
        )
        DEAD_LETTERS.labels(record.topic, type(exc).__name__).inc()
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


def _bound(item: Received[Event]) -> contextlib.AbstractContextManager[object]:
    envelope = item.envelope
    return bound_contextvars(
        correlation_id=envelope.correlation_id,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        initiated_by=envelope.initiated_by,
    )
