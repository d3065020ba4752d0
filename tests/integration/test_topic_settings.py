"""The topics' settings (``quartier_shared.topics``) as the broker holds them after start-up.

The embedded broker stores and reports settings but compacts nothing, and cannot alter a topic's
settings: what is checked here is what a service asks for, not Kafka's compaction itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from structlog.testing import capture_logs

from quartier_shared.kafka import ensure_topics, topic_settings
from quartier_shared.topics import (
    ACTORS_TOPIC,
    CONFERENCES_TOPIC,
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    DAY_MS,
    DEAD_LETTER_TOPIC,
    DEAD_LETTER_TOPICS,
    ERASED_WITHIN_MS,
    TOPICS,
)


@pytest.fixture
async def admin(kafka: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await client.start()
    yield client
    await client.close()


async def test_every_topic_is_created_with_its_declared_partitions_and_settings(
    kafka: str, admin: AIOKafkaAdminClient
) -> None:
    await ensure_topics(kafka)
    described = await admin.describe_topics(list(TOPICS))
    assert {t["topic"]: len(t["partitions"]) for t in described} == {n: s.partitions for n, s in TOPICS.items()}
    actual = await topic_settings(admin, list(TOPICS))
    for name, spec in TOPICS.items():
        assert spec.config.items() <= actual[name].items(), name
    # The contact topics and the actors topic keep the latest record per actor; a tombstone's
    # effect is bounded; every other topic has an explicit retention.
    for name in (ACTORS_TOPIC, CONTACTS_TOPIC, CONTACTS_DEAD_LETTER_TOPIC):
        assert "compact" in actual[name]["cleanup.policy"].split(","), name
        assert int(actual[name]["max.compaction.lag.ms"]) + int(actual[name]["segment.ms"]) <= ERASED_WITHIN_MS
        assert int(actual[name]["delete.retention.ms"]) > 0
    for name, spec in TOPICS.items():
        if not spec.compacted:
            assert actual[name]["cleanup.policy"] == "delete" and int(actual[name]["retention.ms"]) > 0, name
    assert int(actual[DEAD_LETTER_TOPIC]["retention.ms"]) > int(actual[CONFERENCES_TOPIC]["retention.ms"])
    # Dead letters, the contact ones too, are deleted after DEAD_LETTER_RETENTION_DAYS (30 by default).
    assert actual[CONTACTS_DEAD_LETTER_TOPIC]["cleanup.policy"] == "compact,delete"
    for name in (DEAD_LETTER_TOPIC, CONTACTS_DEAD_LETTER_TOPIC):
        assert int(actual[name]["retention.ms"]) == 30 * DAY_MS, name


async def test_the_dead_letters_retention_is_the_setting(kafka: str, admin: AIOKafkaAdminClient) -> None:
    await ensure_topics(kafka, dead_letter_retention_days=7)
    actual = await topic_settings(admin, list(TOPICS))
    assert {name: int(actual[name]["retention.ms"]) for name in DEAD_LETTER_TOPICS} == {
        name: 7 * DAY_MS for name in DEAD_LETTER_TOPICS
    }
    assert actual[CONFERENCES_TOPIC]["retention.ms"] == TOPICS[CONFERENCES_TOPIC].config["retention.ms"]


async def test_a_topic_made_with_other_settings_is_reported_and_the_service_starts_all_the_same(
    kafka: str, admin: AIOKafkaAdminClient
) -> None:
    await admin.create_topics([NewTopic(CONFERENCES_TOPIC, 3, 1, topic_configs={"retention.ms": "1000"})])
    with capture_logs() as logs:
        await ensure_topics(kafka)  # the embedded broker cannot alter a topic: it is reported
    [differ] = [e for e in logs if e["event"] in ("topic_settings_differ", "topic_settings_aligned")]
    assert differ["topic"] == CONFERENCES_TOPIC
    assert set(differ["settings"]) == {"cleanup.policy", "retention.ms"}
    assert set(await admin.list_topics()) >= set(TOPICS)
