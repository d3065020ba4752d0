"""Aligning an existing topic's settings: a broker that refuses says so in its answer, not by an
exception, and the operator must hear about it (``topic_settings_differ``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from quartier_shared import kafka
from quartier_shared.topics import CONFERENCES_TOPIC, TOPICS

TOPIC_AUTHORIZATION_FAILED = 29


class Admin:
    """Reports ``retention.ms`` of 1 s for the topic, and answers an alteration with ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.altered: list[Any] = []

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        entries = [("retention.ms", "1000")]
        return [SimpleNamespace(resources=[(0, None, 2, r.name, entries) for r in resources])]

    async def alter_configs(self, resources: list[Any]) -> list[Any]:
        self.altered += resources
        return [SimpleNamespace(resources=[(self.code, None, 2, r.name) for r in resources])]


@pytest.mark.parametrize(
    ("code", "event"), [(0, "topic_settings_aligned"), (TOPIC_AUTHORIZATION_FAILED, "topic_settings_differ")]
)
async def test_a_refused_alteration_is_reported_as_a_difference(code: int, event: str) -> None:
    admin = Admin(code)
    with capture_logs() as logs:
        await kafka._align_settings(admin, [TOPICS[CONFERENCES_TOPIC]])
    [entry] = [e for e in logs if e["event"].startswith("topic_settings")]
    assert entry["event"] == event and entry["topic"] == CONFERENCES_TOPIC
    assert set(entry["settings"]) == {"cleanup.policy", "retention.ms"}
    assert [r.configs for r in admin.altered] == [dict(TOPICS[CONFERENCES_TOPIC].config)]
    if code:
        assert entry["error"] == "TopicAuthorizationFailedError"
