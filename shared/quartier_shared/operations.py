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
- ``POST /operations/dead-letters/{offset}/replay?topic=…&partition=0``: that dead letter's
  original record handled again here, by the consumer of this service that reads its original
  topic (``EventConsumer.handle_again``: its handler, with the retries of a consumed record).
  Nothing is written to the original topic: a service has no right to write the topics it only
  consumes (``quartier dlq replay``, run as Kafka admin, republishes there instead). 202 with the
  outcome: ``handled``, ``dead_lettered_again`` (a new dead letter in ``dead_letter_topic``, with
  ``dlq.replayed_from`` naming this one) or ``skipped`` (no event this service handles, e.g. a
  major version retired since); 404 when this service wrote no dead letter there (or it was erased
  since), 409 when none of its consumers reads the original topic. Handlers are idempotent, so a
  record that was handled after all is safe to handle again. A replay that has not finished
  within ``REPLAY_SECONDS`` (MongoDB away: the handler waits for it, as the consumer does) is
  stopped and answers 503; asking again later is safe for the same reason. The answer and the
  log name the record by topic, partition, offset and event type only.
- ``GET /operations/outbox``: events waiting to be relayed and the age of the oldest.
- ``GET /operations/consumers``: each consumer group's lag per topic: the records it has not
  committed yet, over all partitions (``EventConsumer.lag``), so it grows while the group is stuck.

Kafka or MongoDB away: 503 with a plain message, as every endpoint answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from . import dead_letters as dlq
from .auth import OPERATOR, allow, protected_router
from .consumer import EventConsumer, Outcome
from .dead_letter_reading import RawDeadLetter, letter_consumer, original_record, read, topic_partitions
from .logging import get_logger
from .outbox import backlog
from .topics import dead_letter_topic_for

if TYPE_CHECKING:
    from .runtime import Runtime

log = get_logger(__name__)
# How long a replay may take before the request gives up (the handler waits while MongoDB is away).
REPLAY_SECONDS = 60.0

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
    topic: str = Field(description="the dead letter's original topic")
    outcome: Literal["handled", "dead_lettered_again", "skipped"]
    dead_letter_topic: str | None = Field(default=None, description="where the new dead letter went, if any")
    event_type: str | None = None
    # A replay used to republish the record; these named where it went. Kept for older clients.
    partition: int | None = Field(default=None, description="none: nothing is republished")
    offset: int | None = Field(default=None, description="none: nothing is republished")


class OutboxOut(BaseModel):
    pending: int
    oldest_age_seconds: float | None


class ConsumerOut(BaseModel):
    group_id: str
    lag: dict[str, int] = Field(
        description="records of each topic the group has not committed yet (handled), over all its partitions"
    )


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

    def reader_of(topic: str | None) -> EventConsumer | None:
        return next((c for c in runtime.consumers if topic in {kind.topic for kind in c.event_types}), None)

    @router.post("/dead-letters/{offset}/replay", status_code=status.HTTP_202_ACCEPTED, response_model=ReplayedOut)
    async def replay(
        offset: int, topic: DeadLetterTopic = dlq.DEAD_LETTER_TOPIC, partition: Annotated[int, Query(ge=0)] = 0
    ) -> ReplayedOut:
        letters, _ = await own_letters(_checked(topic))
        found = next((d for d in letters if (d.letter.dlq_partition, d.letter.dlq_offset) == (partition, offset)), None)
        if found is None:
            detail = f"no dead letter of {service} at {partition}/{offset}"
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=detail)
        original = found.letter.original_topic
        consumer = reader_of(original)
        if original is None or consumer is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"no consumer of {service} reads its original topic")
        try:
            async with asyncio.timeout(REPLAY_SECONDS):
                outcome = await consumer.handle_again(original_record(found))
        except TimeoutError:  # before OSError, of which it is one
            detail = "The replay did not finish in time (is the database away?). Nothing was lost; please try again."
            retry_after = {"Retry-After": "30"}
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail, headers=retry_after) from None
        except (KafkaError, OSError, RuntimeError):  # dead-lettering it again failed
            raise _kafka_away() from None
        answer = ReplayedOut(
            dlq_offset=offset,
            topic=original,
            outcome="dead_lettered_again" if outcome is Outcome.DEAD_LETTERED else outcome.value,
            dead_letter_topic=dead_letter_topic_for(original) if outcome is Outcome.DEAD_LETTERED else None,
            event_type=found.letter.event_type,
        )
        log.info(
            "dead_letter_replayed",
            dlq_topic=topic,
            dlq_partition=partition,
            dlq_offset=offset,
            topic=original,
            partition=found.letter.original_partition,
            offset=found.letter.original_offset,
            event_type=found.letter.event_type,
            outcome=answer.outcome,
        )
        return answer

    @router.get("/outbox", response_model=OutboxOut)
    async def outbox() -> OutboxOut:
        pending, oldest = await backlog(runtime.db, datetime.now(UTC))
        return OutboxOut(pending=pending, oldest_age_seconds=oldest)

    @router.get("/consumers", response_model=list[ConsumerOut])
    async def consumers() -> list[ConsumerOut]:
        try:
            return [ConsumerOut(group_id=c.group_id, lag=await c.lag()) for c in runtime.consumers]
        except (KafkaError, OSError, TimeoutError):
            raise _kafka_away() from None

    return router
