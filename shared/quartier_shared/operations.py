"""Each service's operations endpoints, for the role ``operator`` only: its dead letters and their
replay, its outbox backlog, its consumers' lag. Installed by ``runtime.create_app`` on every
service, so they answer the same everywhere.

- ``GET /operations/dead-letters?topic=…``: the dead letters this service wrote (header
  ``dlq.service`` is its ``SERVICE_NAME``), oldest first, described by their headers only
  (``dead_letter_reading``): never the value, which holds names and addresses. ``topic`` is one of
  ``DEAD_LETTER_TOPICS`` (422 otherwise), the main dead-letter topic by default; the contact events'
  dead letters (quartier.contacts.dead-letters) too, without those before their key's tombstone (an
  erased actor). A service reads only the dead-letter topics it writes to (the main one, and the
  contact dead letters for the reader of the contact topic, notifications): another one answers
  an empty list without being read, so its names and addresses stay away from that service.
- ``POST /operations/dead-letters/{offset}/replay?topic=…&partition=0``: that dead letter back to
  its original topic and partition, as ``quartier dlq replay`` sends it (202 with where it went);
  404 when this service wrote no dead letter there (or it was erased since), 409 when its original
  topic is gone.
- ``GET /operations/outbox``: events waiting to be relayed and the age of the oldest.
- ``GET /operations/consumers``: each consumer group's lag per topic (this instance's partitions).

Kafka or MongoDB away: 503 with a plain message, as every endpoint answers.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from . import dead_letters as dlq
from .auth import OPERATOR, allow, protected_router
from .dead_letter_reading import RawDeadLetter, Replayed, letter_consumer, read, replay_message, topic_partitions
from .outbox import backlog
from .topics import dead_letter_topic_for

if TYPE_CHECKING:
    from .runtime import Runtime

DeadLetterTopic = Annotated[str, Query(description=f"one of {', '.join(dlq.DEAD_LETTER_TOPICS)}", max_length=100)]


class DeadLetterOut(BaseModel):
    dlq_partition: int
    dlq_offset: int
    failed_at: str | None
    service: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    error_class: str | None
    error_message: str | None = Field(description="the error, with e-mail addresses replaced by <address>")
    event_type: str | None


class ReplayedOut(BaseModel):
    dlq_offset: int
    topic: str
    partition: int
    offset: int


class OutboxOut(BaseModel):
    pending: int
    oldest_age_seconds: float | None


class ConsumerOut(BaseModel):
    group_id: str
    lag: dict[str, int] = Field(description="records behind the end of each topic, over this instance's partitions")


def _checked(topic: str) -> str:
    if topic not in dlq.DEAD_LETTER_TOPICS:
        detail = [{"type": "value_error", "loc": ["query", "topic"], "msg": "not a dead-letter topic", "input": None}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)
    return topic


def _kafka_away() -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="Kafka is not reachable right now")


def operations_router(runtime: Runtime) -> APIRouter:
    router = protected_router(prefix="/operations", tags=["operations"], dependencies=[allow(OPERATOR)])
    service = runtime.settings.service_name

    def written_to() -> set[str]:
        """The dead-letter topics this service's consumers write to."""
        consumed = {kind.topic for consumer in runtime.consumers for kind in consumer.event_types}
        return {dlq.DEAD_LETTER_TOPIC} | {dead_letter_topic_for(topic) for topic in consumed}

    async def own_letters(topic: str) -> tuple[list[RawDeadLetter], dict[str, set[int]]]:
        if topic not in written_to():
            return [], {}
        consumer = letter_consumer(runtime.settings.kafka_bootstrap_servers, runtime.kafka_security)
        try:
            await consumer.start()
            topics = await topic_partitions(consumer)
            letters = await read(consumer, topics, topic)
        except (KafkaError, OSError, TimeoutError):
            raise _kafka_away() from None
        finally:
            await consumer.stop()
        return [d for d in letters if d.letter.service == service], topics

    @router.get("/dead-letters", response_model=list[DeadLetterOut])
    async def dead_letters(topic: DeadLetterTopic = dlq.DEAD_LETTER_TOPIC) -> list[dict[str, Any]]:
        letters, _ = await own_letters(_checked(topic))
        return [asdict(d.letter) for d in letters]

    @router.post("/dead-letters/{offset}/replay", status_code=status.HTTP_202_ACCEPTED, response_model=ReplayedOut)
    async def replay(
        offset: int, topic: DeadLetterTopic = dlq.DEAD_LETTER_TOPIC, partition: Annotated[int, Query(ge=0)] = 0
    ) -> Replayed:
        letters, topics = await own_letters(_checked(topic))
        found = next((d for d in letters if (d.letter.dlq_partition, d.letter.dlq_offset) == (partition, offset)), None)
        if found is None:
            detail = f"no dead letter of {service} at {partition}/{offset}"
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=detail)
        if found.letter.original_topic not in topics:
            raise HTTPException(status.HTTP_409_CONFLICT, detail="its original topic does not exist")
        try:
            [result] = await runtime.publisher.publish_each([replay_message(found, topics)])
        except (KafkaError, OSError, RuntimeError):
            raise _kafka_away() from None
        if isinstance(result, BaseException):
            raise _kafka_away()
        return Replayed(offset, result.topic, result.partition, result.offset)

    @router.get("/outbox", response_model=OutboxOut)
    async def outbox() -> OutboxOut:
        pending, oldest = await backlog(runtime.db, datetime.now(UTC))
        return OutboxOut(pending=pending, oldest_age_seconds=oldest)

    @router.get("/consumers", response_model=list[ConsumerOut])
    async def consumers() -> list[ConsumerOut]:
        return [ConsumerOut(group_id=c.group_id, lag=dict(await c.lag())) for c in runtime.consumers]

    return router
