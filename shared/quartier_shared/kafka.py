"""Kafka plumbing: topic creation, the FastStream broker, and the raw publisher.

The outbox relay and the dead-letter path publish through one aiokafka producer that pipelines
sends (a batch of futures awaited together), because an awaited publish at a time is slow.
At-least-once: no idempotent producer or transactions (the embedded broker does not support
them through aiokafka); consumers are idempotent instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from .events import TOPIC_PARTITIONS
from .logging import get_logger
from .settings import ServiceSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int | None = None  # None: the partitioner's choice by key (a replay names the original one)


_SASL = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    """How every Kafka client of a service authenticates: None for PLAINTEXT (the embedded stack),
    else SASL with the service's own principal (KAFKA_SASL_*), over TLS for SASL_SSL. The broker
    takes it as ``security=``; the aiokafka clients take ``client_kwargs(security)``."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    if settings.kafka_sasl_username is None or settings.kafka_sasl_password is None:  # the settings refuse it
        raise ValueError("SASL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    tls = settings.kafka_security_protocol == "SASL_SSL"
    return _SASL[settings.kafka_sasl_mechanism](
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=ssl.create_default_context() if tls else None,
        use_ssl=tls,
    )


def client_kwargs(security: BaseSecurity | None) -> dict[str, Any]:
    """The aiokafka keyword arguments of ``security`` (FastStream's own translation, so the broker
    and the raw clients cannot disagree)."""
    return parse_security(security)


async def ensure_topics(
    bootstrap: str, topics: Iterable[str] | None = None, *, security: BaseSecurity | None = None
) -> None:
    """Create missing topics with their explicit partition counts (never rely on auto-create)."""
    wanted = {t: TOPIC_PARTITIONS[t] for t in (topics or TOPIC_PARTITIONS)}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs(security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in wanted.items() if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another service was first
                await admin.create_topics(missing)
            log.info("topics_created", topics=[t.name for t in missing])
    finally:
        await admin.close()


def make_broker(bootstrap: str, *, security: BaseSecurity | None = None) -> KafkaBroker:
    """The FastStream broker for the service's consumers. Consumer-only: events go out through
    the process's one ``KafkaPublisher`` (the outbox relay and dead letters), so the broker starts
    no producer or admin client of its own."""
    # FastStream logs each message at INFO; our handlers log what matters.
    return KafkaBroker(
        bootstrap,
        security=security,
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
        consumer_only=True,
    )


class KafkaPublisher:
    """Publishes batches of prepared messages and returns when the broker has taken all of them."""

    def __init__(
        self, bootstrap: str, request_timeout_ms: int = 15_000, *, security: BaseSecurity | None = None
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            linger_ms=5,
            request_timeout_ms=self._request_timeout_ms,
            max_batch_size=256 * 1024,
            **client_kwargs(self._security),
        )
        try:
            await producer.start()
        except Exception:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ping(self) -> bool:
        """Whether the broker answers a metadata request (the caller bounds the wait)."""
        if self._producer is None:
            return False
        await self._producer.client.fetch_all_metadata()
        return True

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        for outcome in await self.publish_each(messages):
            if isinstance(outcome, BaseException):
                raise outcome

    async def publish_each(self, messages: Sequence[OutgoingMessage]) -> list[Any]:
        """Each message's outcome, in order: its RecordMetadata (topic, partition, offset) or the exception."""
        if self._producer is None:
            raise RuntimeError("publisher not started")
        futures = [
            await self._producer.send(m.topic, m.value, key=m.key, partition=m.partition, headers=m.headers)
            for m in messages
        ]
        return list(await asyncio.gather(*futures, return_exceptions=True))
