"""The consumer's retry rules, without I/O: a failing batch is split so that only the poison
event is dead-lettered, and a database outage is waited out rather than dead-lettered. A record
handled again (``handle_again``, the operators' replay) gets the same handler and retries, and a
second failure is dead-lettered again with its link to the dead letter it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.errors import ServerSelectionTimeoutError

from quartier_shared import dead_letters as dlq
from quartier_shared.consumer import EventConsumer, Outcome, Received
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


def again(value: bytes, headers: list[tuple[str, bytes]]) -> FakeRecord:
    """A dead letter's original record, as the replay hands it over: linked to dead letter 9."""
    return FakeRecord("quartier.actors", 0, 4, b"a1", value, [*headers, (dlq.REPLAYED_FROM, b"9")])


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


async def test_a_record_handled_again_goes_through_its_handler_with_retries() -> None:
    publisher = RecordingPublisher()
    calls: list[str] = []

    async def flaky(batch: list[Received[Any]]) -> None:
        calls.extend(item.event.actor_id for item in batch)
        if len(calls) == 1:
            raise ValueError("once")

    c = consumer(publisher)
    c.batch_handlers[ActorDeactivated] = flaky
    envelope = envelope_of(ActorDeactivated(actor_id="a1", revision=2))
    outcome = await c.handle_again(again(envelope.model_dump_json().encode(), kafka_headers(envelope)))
    assert outcome is Outcome.HANDLED and calls == ["a1", "a1"] and publisher.sent == []


async def test_a_record_failing_again_is_dead_lettered_again_with_its_link() -> None:
    publisher = RecordingPublisher()
    c = consumer(publisher)

    async def failing(batch: list[Received[Any]]) -> None:
        raise ValueError("still broken")

    c.batch_handlers[ActorDeactivated] = failing
    envelope = envelope_of(ActorDeactivated(actor_id="a1", revision=2))
    outcome = await c.handle_again(again(envelope.model_dump_json().encode(), kafka_headers(envelope)))
    assert outcome is Outcome.DEAD_LETTERED
    assert await c.handle_again(again(b"not json", [])) is Outcome.DEAD_LETTERED
    assert len(publisher.sent) == 2
    for dead in publisher.sent:
        headers = dict(dead.headers)
        assert dead.topic == DEAD_LETTER_TOPIC and headers[dlq.REPLAYED_FROM] == b"9"
        assert headers[dlq.ORIGINAL_TOPIC] == b"quartier.actors" and headers[dlq.OFFSET] == b"4"
    assert await c.handle_again(FakeRecord("quartier.actors", 0, 5, b"a1", None, [])) is Outcome.SKIPPED  # type: ignore[arg-type]
