"""`quartier topics apply`: every topic of ``quartier_shared.topics.TOPICS`` on the broker, with its
declared partitions and settings, then read back from the broker and compared.

The one declaration, applied in two places by the same code (``kafka.ensure_topics``): by each
service at start-up, and by this command, which the compose file's one-shot ``topics`` service runs
as the admin principal before any service starts (the services' own principals may not create or
alter topics). Running it again changes nothing: an existing topic is created no second time and
its settings are altered only where they differ.

What the broker reports afterwards decides the exit code, not what was asked for: a setting it
refused to alter, or a partition count that differs (Kafka can add partitions but never remove
any, and adding them would move keys: an operator's decision, never this command's), ends it with
``DIFFERS`` (3), naming the topic and the setting.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from structlog.testing import capture_logs

from quartier_shared.kafka import client_kwargs, ensure_topics, topic_settings
from quartier_shared.topics import DEAD_LETTERS_RETENTION_DAYS, TOPICS, TopicSpec, declared_topics

from .common import Address, OperatorError, quiet

# The broker holds other settings than TOPICS declares, after the command tried to apply them.
DIFFERS = 3


@dataclass(frozen=True)
class TopicState:
    """One topic as the broker reports it, against its declaration."""

    topic: str
    partitions: int | None  # None: the broker does not know the topic
    declared_partitions: int
    differing: tuple[str, ...]  # the names of the settings (and "partitions") that differ

    @property
    def ok(self) -> bool:
        return not self.differing


async def read_back(kafka: Address, declared: dict[str, TopicSpec] = TOPICS) -> list[TopicState]:
    """Every declared topic as the broker holds it now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.value, **client_kwargs(kafka.security))
    await admin.start()
    try:
        described = await admin.describe_topics(list(TOPICS))
        partitions = {t["topic"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}
        settings = await topic_settings(admin, [name for name in TOPICS if name in partitions])
    finally:
        await admin.close()
    states = []
    for name, spec in declared.items():
        actual = settings.get(name, {})
        differing = [key for key, value in spec.config.items() if actual.get(key) != value]
        if partitions.get(name) != spec.partitions:
            differing.insert(0, "partitions")
        states.append(TopicState(name, partitions.get(name), spec.partitions, tuple(differing)))
    return states


async def apply(kafka: Address, dead_letter_days: int = DEAD_LETTERS_RETENTION_DAYS) -> list[TopicState]:
    """``dead_letter_days``: how long the dead-letter topics keep a record (the services'
    ``DEAD_LETTER_RETENTION_DAYS``)."""
    try:
        await ensure_topics(kafka.value, security=kafka.security, dead_letter_retention_days=dead_letter_days)
        return await read_back(kafka, declared_topics(dead_letter_days))
    except (KafkaError, OSError, TimeoutError) as exc:
        raise OperatorError(f"cannot reach Kafka at {kafka.value} (from {kafka.source}): {type(exc).__name__}") from exc


def render(states: list[TopicState], declared: dict[str, TopicSpec] = TOPICS) -> str:
    width = max(len(s.topic) for s in states)
    lines = []
    for s in states:
        config = ", ".join(f"{k}={v}" for k, v in declared[s.topic].config.items())
        verdict = "ok" if s.ok else "DIFFERS: " + ", ".join(s.differing)
        lines.append(f"{s.topic.ljust(width)}  {s.partitions or '-'}/{s.declared_partitions}  {verdict}  ({config})")
    return "\n".join(lines)


def apply_command(kafka: Address, as_json: bool, dead_letter_days: int = DEAD_LETTERS_RETENTION_DAYS) -> str:
    # ensure_topics logs for a service's log stream (topics_created, topic_settings_differ); here
    # the read-back says the same per topic, and stdout stays the result alone (`--json | jq`).
    with quiet("aiokafka", "kafka"), capture_logs():
        states = asyncio.run(apply(kafka, dead_letter_days))
    text = (
        json.dumps([asdict(s) for s in states], indent=2)
        if as_json
        else render(states, declared_topics(dead_letter_days))
    )
    wrong = [s for s in states if not s.ok]
    if wrong:
        print(text, flush=True)  # the whole picture first; the error line names what differs
        names = ", ".join(f"{s.topic} ({', '.join(s.differing)})" for s in wrong)
        raise OperatorError(f"the broker holds other settings than topics.py declares: {names}", DIFFERS)
    return text
