"""Fault cases 3 and 4: the broker or a service's database stops answering for a while."""

from __future__ import annotations

import asyncio
import re
import time

from quartier_shared.outbox import pending_events
from tests.faults.cluster import Cluster, assert_invited_once, invite, record, register_actors, schedule


async def test_3_kafka_paused_for_20_seconds_while_actors_register_and_a_conference_is_scheduled(
    cluster: Cluster,
) -> None:
    n = 30
    cluster.start_services()
    async with cluster.http() as http:
        cluster.pause("kafka")
        paused_at = time.monotonic()
        actors = await register_actors(http, cluster.url("actors"), n, district="VI")
        conference_id = await schedule(http, cluster.url("conferences"), district="VI")
        held = {
            "actors": await pending_events(cluster.database("actors")),
            "conferences": await pending_events(cluster.database("conferences")),
        }
        # Ready all the same (a health-aware proxy keeps the API up); the details and gauge say why.
        ready_during = await http.get(f"{cluster.url('actors')}/health/ready")
        details_during = await http.get(f"{cluster.url('actors')}/health")
        metrics_during = (await http.get(f"{cluster.url('actors')}/metrics")).text
        await asyncio.sleep(max(0.0, 20 - (time.monotonic() - paused_at)))
        cluster.resume("kafka")
        counts = await assert_invited_once(http, cluster, conference_id, actors, timeout=240)
        details_after = await http.get(f"{cluster.url('actors')}/health")
    # Accepted while the broker was away: each registration's ActorRegistered and ContactChanged.
    assert held == {"actors": 2 * n, "conferences": 1}
    assert ready_during.status_code == 200 and ready_during.json()["checks"] == {"mongodb": "ok", "kafka": "down"}
    assert details_during.status_code == 200 and details_during.json()["status"] == "degraded"
    assert re.search(r"^quartier_kafka_connected 0\.0$", metrics_during, re.MULTILINE), metrics_during
    assert details_after.json()["status"] == "ok"
    record("3 Kafka paused 20 s", events_held_in_outboxes=sum(held.values()), **counts)


async def test_4_a_services_database_paused_during_processing(cluster: Cluster) -> None:
    n = 200
    cluster.own_mongodb("notifications")
    cluster.start_services()
    async with cluster.http() as http:
        actors, conference_id = await invite(http, cluster, n, district="VII")
        sent_before_pause = await cluster.wait_for_mails(n // 5)
        cluster.pause("mongodb-notifications")
        notifications = cluster.url("notifications")
        during = await http.get(f"{notifications}/deliveries", params={"conference_id": conference_id})
        ready = await http.get(f"{notifications}/health/ready")
        await asyncio.sleep(5)
        cluster.resume("mongodb-notifications")
        counts = await assert_invited_once(http, cluster, conference_id, actors, timeout=240)
    assert during.status_code == 503 and "database" in during.json()["detail"]
    assert ready.status_code == 503 and ready.json()["checks"]["mongodb"] == "down"
    record("4 notifications MongoDB paused", sent_before_pause=sent_before_pause, **counts)
