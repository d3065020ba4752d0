"""The topics' settings (``quartier_shared.topics``) as the broker holds them after start-up.

The embedded broker stores and reports settings but compacts nothing, and cannot alter a topic's
settings: what is checked here is what a service asks for, not Kafka's compaction itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from structlog.testing import capture_logs

from quartier.cli import main
from quartier.embedded import free_port
from quartier.topics import DIFFERS
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


# --- `quartier topics apply`: what the compose file's one-shot `topics` service runs -------------


async def apply_topics(capsys: pytest.CaptureFixture[str], kafka: str, *args: str) -> tuple[int, str, str]:
    """The command as the console script runs it (in a thread: it runs its own event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["topics", "apply", "--kafka", kafka, *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_topics_apply_creates_every_topic_reads_it_back_and_changes_nothing_the_second_time(
    kafka: str, admin: AIOKafkaAdminClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await apply_topics(capsys, kafka, "--json")
    assert (code, err) == (0, "")
    reported = {row["topic"]: row for row in json.loads(out)}
    assert set(reported) == set(TOPICS)
    assert all(row["differing"] == [] and row["partitions"] == TOPICS[n].partitions for n, row in reported.items())
    # What the broker holds, asked independently of the command.
    actual = await topic_settings(admin, list(TOPICS))
    assert all(spec.config.items() <= actual[name].items() for name, spec in TOPICS.items())

    code, out, _ = await apply_topics(capsys, kafka)  # a second `up`
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()] == [
        [name, f"{spec.partitions}/{spec.partitions}", "ok"] for name, spec in TOPICS.items()
    ]


async def test_topics_apply_fails_naming_a_topic_whose_settings_the_broker_keeps(
    kafka: str, admin: AIOKafkaAdminClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # Made before the declaration, with two partitions too few; the embedded broker cannot alter it.
    await admin.create_topics([NewTopic(CONFERENCES_TOPIC, 1, 1, topic_configs={"retention.ms": "1000"})])
    code, out, err = await apply_topics(capsys, kafka)
    assert code == DIFFERS
    assert f"{CONFERENCES_TOPIC} (partitions, cleanup.policy, retention.ms)" in err
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert "DIFFERS: partitions, cleanup.policy, retention.ms" in rows[CONFERENCES_TOPIC]
    assert all(" ok " in line for name, line in rows.items() if name != CONFERENCES_TOPIC)


async def test_topics_apply_says_when_kafka_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await apply_topics(capsys, f"127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach Kafka at 127.0.0.1:" in err
