"""Consumer lag from the group's committed offsets: records a stuck consumer has fetched but not
handled (so not committed) count, where the fetch position said the lag was zero. It shows in
GET /operations/consumers and in the gauge quartier_consumer_lag, and falls to zero once the
records are handled and committed."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime

import httpx

from actors.app import build
from actors.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.consumer import Received
from quartier_shared.events import UNSUBSCRIBES_TOPIC, UnsubscribeRequested
from quartier_shared.kafka import ensure_topics
from tests.helpers import envelope_of, eventually, publish, running, settings_for

N = 5


def lag_gauge(metrics: str, topic: str) -> float:
    found = re.search(rf'^quartier_consumer_lag{{topic="{re.escape(topic)}"}} (\S+)$', metrics, re.MULTILINE)
    assert found, f"no quartier_consumer_lag for {topic}"
    return float(found[1])


async def test_a_stuck_consumers_lag_counts_what_it_fetched_but_did_not_commit(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    [consumer] = app.state.runtime.consumers
    release = asyncio.Event()
    started: list[str] = []
    handle = consumer.handlers[UnsubscribeRequested]

    async def stuck(received: Received[UnsubscribeRequested]) -> None:
        started.append(received.event.actor_id)
        await release.wait()  # as a handler waiting for MongoDB does: nothing is committed meanwhile
        await handle(received)

    consumer.handlers[UnsubscribeRequested] = stuck
    requests = [
        UnsubscribeRequested(actor_id=f"unknown-{uuid.uuid4().hex[:8]}", requested_at=datetime.now(UTC))
        for _ in range(N)
    ]
    async with running(app, infra.auth_headers("operator")) as client:
        await publish(infra.kafka_bootstrap, [envelope_of(r) for r in requests])
        await eventually(lambda: asyncio.sleep(0, started or None))  # fetched: the position moved on

        async def lag_of_unsubscribes() -> dict[str, int]:
            answer = await client.get("/operations/consumers")
            assert answer.status_code == 200, answer.text
            [group] = answer.json()
            assert group["group_id"] == "actors"
            return dict(group["lag"])

        while_stuck = await lag_of_unsubscribes()
        gauge_while_stuck = lag_gauge((await client.get("/metrics")).text, UNSUBSCRIBES_TOPIC)
        release.set()

        async def caught_up() -> bool | None:
            return (await lag_of_unsubscribes())[UNSUBSCRIBES_TOPIC] == 0 or None

        await eventually(caught_up)
        gauge_after = lag_gauge((await client.get("/metrics")).text, UNSUBSCRIBES_TOPIC)
        coordinator = httpx.Headers(infra.auth_headers("coordinator"))
        assert (await client.get("/operations/consumers", headers=coordinator)).status_code == 403

    assert while_stuck[UNSUBSCRIBES_TOPIC] == N, while_stuck
    assert gauge_while_stuck == N
    assert gauge_after == 0
    assert set(while_stuck) == {UNSUBSCRIBES_TOPIC, "quartier.erasures"}


async def test_a_group_that_never_ran_lags_by_everything_on_its_topics(
    infra: Infrastructure, database_name: str
) -> None:
    """The service is down (its consumer never started): its group's lag is every record published
    meanwhile, asked of the broker, not of a consumer's fetch position."""
    app = build(settings_for(Settings, infra, database_name))
    [consumer] = app.state.runtime.consumers
    await ensure_topics(infra.kafka_bootstrap)
    requests = [
        UnsubscribeRequested(actor_id=f"unknown-{uuid.uuid4().hex[:8]}", requested_at=datetime.now(UTC))
        for _ in range(N)
    ]
    await publish(infra.kafka_bootstrap, [envelope_of(r) for r in requests])
    assert await consumer.lag() == {UNSUBSCRIBES_TOPIC: N, "quartier.erasures": 0}
