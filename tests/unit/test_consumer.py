"""The consumer's retry rules, without I/O: a failing batch is split so that only the poison
event is dead-lettered, and a database outage is waited out rather than dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.errors import ServerSelectionTimeoutError

from quartier_shared import dead_letters as dlq
from quartier_shared.consumer import EventConsumer, Received
from quartier_shared.events import DEAD_LETTER_TOPIC, ActorDeactivated, Event, kafka_headers
from quartier_shared.kafka import KafkaPublisher, make_broker
from quartier_shared.settings import ServiceSettings
from tests.helpers import RecordingPublisher, envelope_of


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def consumer(publisher: KafkaPublisher) -> EventConsumer:
    settings = ServiceSettings(service_name="test", handler_max_attempts=2, handler_backoff_seconds=0.001)
    return EventConsumer(
        settings=settings,
        broker=make_broker("unused:9092"),
        publisher=publisher,
        group_id="test",
        # Subscribes it to the actors topic; the tests hand their own handlers to _as_batch.
        batch_handlers={ActorDeactivated: _not_used},
    )


async def _not_used(batch: list[Received[Any]]) -> None:
    raise AssertionError("the tests call their own handlers")


async def received(consumer: EventConsumer, count: int) -> list[Received[Event]]:
    items = []
    for i in range(count):
        envelope = envelope_of(ActorDeactivated(actor_id=f"a{i}", revision=2))
        record = FakeRecord(
            "quartier.actors",
            0,
            i,
            envelope.aggregate_id.encode(),
            envelope.model_dump_json().encode(),
            kafka_headers(envelope),
        )
        item = await consumer.decode(record)
        assert item is not None
        items.append(item)
    return items


async def test_a_failing_batch_is_split_and_only_the_poison_event_is_dead_lettered() -> None:
    publisher = RecordingPublisher()
    c = consumer(publisher)
    handled: list[str] = []

    async def handler(batch: list[Received[Any]]) -> None:
        if any(item.event.actor_id == "a2" for item in batch):
            raise ValueError("cannot handle a2")
        handled.extend(item.event.actor_id for item in batch)

    await c._as_batch(handler, await received(c, 4))
    assert handled == ["a0", "a1", "a3"]
    [dead] = publisher.sent
    headers = dict(dead.headers)
    assert dead.topic == DEAD_LETTER_TOPIC and headers[dlq.OFFSET] == b"2"
    assert headers[dlq.ERROR_CLASS] == b"ValueError" and headers[dlq.SERVICE] == b"test"


async def test_a_database_outage_is_waited_out_not_dead_lettered() -> None:
    publisher = RecordingPublisher()
    c = consumer(publisher)
    calls = 0

    async def handler(batch: list[Received[Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 4:  # more failures than handler_max_attempts allows for other errors
            raise ServerSelectionTimeoutError("no MongoDB")

    await c._as_batch(handler, await received(c, 3))
    assert calls == 5 and publisher.sent == []
