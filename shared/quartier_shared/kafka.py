"""Kafka plumbing: topics and their settings, the FastStream broker, and the raw publisher.

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
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from .logging import get_logger
from .settings import ServiceSettings
from .topics import DEAD_LETTERS_RETENTION_DAYS, TopicSpec, declared_topics

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (on a compacted topic, deletes what the key held)
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
    bootstrap: str,
    topics: Iterable[str] | None = None,
    *,
    security: BaseSecurity | None = None,
    dead_letter_retention_days: int = DEAD_LETTERS_RETENTION_DAYS,
) -> None:
    """Create missing topics with their declared partitions and settings
    (``topics.declared_topics``, with the dead letters kept ``dead_letter_retention_days``; never
    rely on auto-create), and bring the settings of existing ones in line.

    A setting that differs is altered; where the broker does not allow it (the services' users
    in ``deploy/`` may not alter topics, the embedded broker cannot), the difference is logged as
    ``topic_settings_differ`` for the operator, and the service starts all the same: a wrong
    retention is not a reason to stop sending invitations."""
    declared = declared_topics(dead_letter_retention_days)
    wanted = [declared[t] for t in (topics or declared)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs(security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, topic_configs=dict(t.config))
            for t in wanted
            if t.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another service was first
                await admin.create_topics(missing)
            log.info("topics_created", topics=[t.name for t in missing])
        await _align_settings(admin, [t for t in wanted if t.name in existing])
    finally:
        await admin.close()


async def topic_settings(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """The settings the broker reports for each of ``names`` (those it knows)."""
    if not names:
        return {}
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, _message, _type, name, entries, *_ in response.resources:
            if error_code == 0:
                found[name] = {entry[0]: entry[1] for entry in entries}
    return found


async def _align_settings(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> None:
    actual = await topic_settings(admin, [s.name for s in specs])
    for spec in specs:
        differ = {k: v for k, v in spec.config.items() if actual.get(spec.name, {}).get(k) != v}
        if not differ:
            continue
        try:
            resource = ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=dict(spec.config))
            responses = await admin.alter_configs([resource])
            # A refusal (no AlterConfigs right) comes back as an error code, not as an exception.
            error = next((r[0] for response in responses for r in response.resources if r[0] != 0), 0)
            problem = for_code(error).__name__ if error else None
        except KafkaError as exc:  # not supported by this broker (the embedded one)
            problem = type(exc).__name__
        if problem:
            log.warning("topic_settings_differ", topic=spec.name, settings=sorted(differ), error=problem)
        else:
            log.info("topic_settings_aligned", topic=spec.name, settings=sorted(differ))


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
