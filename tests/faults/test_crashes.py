"""Fault cases 1, 2 and 8: processes killed with -9 at the worst moments."""

from __future__ import annotations

import asyncio
import time

from quartier_shared.outbox import pending_events
from tests.faults.cluster import (
    Cluster,
    assert_invited_once,
    invite,
    record,
    register_actors,
    schedule,
    wait_for_copies,
)


async def test_1_notifications_killed_mid_fan_out_then_restarted(cluster: Cluster) -> None:
    n = 250
    cluster.start_services()
    async with cluster.http() as http:
        actors, conference_id = await invite(http, cluster, n, district="IV")
        sent_before_kill = await cluster.wait_for_mails(n // 5)
        cluster.kill("notifications")
        await asyncio.sleep(1)
        cluster.restart("notifications")
        counts = await assert_invited_once(
            http, cluster, conference_id, actors, allowed_crash_duplicates=cluster.in_flight_per_instance
        )
    record("1 notifications kill -9 mid fan-out", sent_before_kill=sent_before_kill, **counts)


async def test_2_conferences_killed_after_201_before_the_relay_published(cluster: Cluster) -> None:
    n = 20
    cluster.start_services()
    async with cluster.http() as http:
        actors = await register_actors(http, cluster.url("actors"), n, district="V")
        await wait_for_copies(cluster, n)
        cluster.pause("kafka")  # the relay cannot publish, so the event can only be in the outbox
        conference_id = await schedule(http, cluster.url("conferences"), district="V")
        pending_at_kill = await pending_events(cluster.database("conferences"))
        cluster.kill("conferences")
        cluster.resume("kafka")
        cluster.restart("conferences")
        counts = await assert_invited_once(http, cluster, conference_id, actors)
    assert pending_at_kill == 1
    record("2 conferences kill -9 after 201, event only in outbox", pending_at_kill=pending_at_kill, **counts)


async def test_8_two_notifications_instances_share_a_fan_out_one_killed_midway(cluster: Cluster) -> None:
    n = 600
    cluster.start_services(notifications=2)
    async with cluster.http() as http:
        t0 = time.monotonic()
        actors = await register_actors(http, cluster.url("actors"), n, district="IX", parallel=32)
        t1 = time.monotonic()
        await wait_for_copies(cluster, n, timeout=240)
        t2 = time.monotonic()
        conference_id = await schedule(http, cluster.url("conferences"), district="IX")
        sent_before_kill = await cluster.wait_for_mails(n // 3, timeout=240)
        t3 = time.monotonic()
        cluster.kill("notifications-2")
        counts = await assert_invited_once(
            http, cluster, conference_id, actors, timeout=300, allowed_crash_duplicates=cluster.in_flight_per_instance
        )
        t4 = time.monotonic()
        print(f"TIMING register={t1 - t0:.1f} copies={t2 - t1:.1f} to_midway={t3 - t2:.1f} rest={t4 - t3:.1f}")
    deliveries = cluster.database("notifications")["deliveries"]
    # the invitations (each actor's Art. 14 notice has a delivery of its own)
    assert await deliveries.count_documents({"status": "sent", "kind": "invitation"}) == n
    record("8 two notifications instances, one kill -9 midway", sent_before_kill=sent_before_kill, **counts)
