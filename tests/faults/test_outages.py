"""Fault cases 3 and 4: the broker or a service's database stops answering for a while."""

from __future__ import annotations

import asyncio
import time

import httpx

from quartier_shared.outbox import pending_events
from tests.faults.cluster import (
    Cluster,
    assert_each_once,
    record,
    register_actors,
    schedule,
    wait_for_copies,
    wait_for_outcomes,
)
from tests.helpers import eventually


async def test_3_kafka_paused_for_20_seconds_while_actors_register_and_a_conference_is_scheduled(
    cluster: Cluster,
) -> None:
    n = 30
    cluster.start_services()
    async with httpx.AsyncClient(timeout=30) as http:
        cluster.pause("kafka")
        paused_at = time.monotonic()
        actors = await register_actors(http, cluster.url("actors"), n, district="VI")
        conference_id = await schedule(http, cluster.url("conferences"), district="VI")
        held = {
            "actors": await pending_events(cluster.database("actors")),
            "conferences": await pending_events(cluster.database("conferences")),
        }
        await asyncio.sleep(max(0.0, 20 - (time.monotonic() - paused_at)))
        cluster.resume("kafka")
        detail = await wait_for_outcomes(http, cluster, conference_id, n, timeout=240)
    await asyncio.sleep(2)
    assert held == {"actors": n, "conferences": 1}  # accepted while the broker was away
    assert detail["counts"]["sent"] == n
    counts = assert_each_once(cluster.mails(), {a["email"] for a in actors})
    record("3 Kafka paused 20 s", events_held_in_outboxes=sum(held.values()), **counts)


async def test_4_a_services_database_paused_during_processing(cluster: Cluster) -> None:
    n = 200
    cluster.own_mongodb("notifications")
    cluster.start_services()
    async with httpx.AsyncClient(timeout=30) as http:
        actors = await register_actors(http, cluster.url("actors"), n, district="VII")
        await wait_for_copies(cluster, n)
        conference_id = await schedule(http, cluster.url("conferences"), district="VII")

        async def some_sent() -> int:
            total = cluster.mails().total
            return total if total >= n // 5 else 0

        sent_before_pause = await eventually(some_sent, timeout=120, interval=0.05)
        cluster.pause("mongodb-notifications")
        notifications = cluster.url("notifications")
        during = await http.get(f"{notifications}/deliveries", params={"conference_id": conference_id})
        ready = await http.get(f"{notifications}/health/ready")
        await asyncio.sleep(5)
        cluster.resume("mongodb-notifications")
        detail = await wait_for_outcomes(http, cluster, conference_id, n, timeout=240)
    await asyncio.sleep(2)
    assert during.status_code == 503 and "database" in during.json()["detail"]
    assert ready.status_code == 503 and ready.json()["checks"]["mongodb"] == "down"
    assert detail["counts"]["sent"] == n
    counts = assert_each_once(cluster.mails(), {a["email"] for a in actors})
    record("4 notifications MongoDB paused", sent_before_pause=sent_before_pause, **counts)
