"""Fault cases 1, 2 and 8: processes killed with -9 at the worst moments."""

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


async def test_1_notifications_killed_mid_fan_out_then_restarted(cluster: Cluster) -> None:
    n = 500
    cluster.start_services()
    async with httpx.AsyncClient(timeout=30) as http:
        actors = await register_actors(http, cluster.url("actors"), n)
        await wait_for_copies(cluster, n)
        conference_id = await schedule(http, cluster.url("conferences"))

        async def some_sent() -> int:
            return cluster.mails().total >= n // 5 and cluster.mails().total

        sent_before_kill = await eventually(some_sent, timeout=120, interval=0.05)
        cluster.kill("notifications")
        await asyncio.sleep(1)
        cluster.restart("notifications")
        detail = await wait_for_outcomes(http, cluster, conference_id, n)
    await asyncio.sleep(2)  # a late duplicate would land now
    assert detail["counts"]["sent"] == n
    counts = assert_each_once(
        cluster.mails(), {a["email"] for a in actors}, allowed_crash_duplicates=cluster.in_flight_per_instance
    )
    record("1 notifications kill -9 mid fan-out", sent_before_kill=sent_before_kill, **counts)


async def test_2_conferences_killed_after_201_before_the_relay_published(cluster: Cluster) -> None:
    n = 20
    cluster.start_services()
    async with httpx.AsyncClient(timeout=30) as http:
        actors = await register_actors(http, cluster.url("actors"), n, district="V")
        await wait_for_copies(cluster, n)
        cluster.pause("kafka")  # the relay cannot publish, so the event can only be in the outbox
        conference_id = await schedule(http, cluster.url("conferences"), district="V")
        pending_at_kill = await pending_events(cluster.database("conferences"))
        cluster.kill("conferences")
        cluster.resume("kafka")
        cluster.restart("conferences")
        detail = await wait_for_outcomes(http, cluster, conference_id, n)
    await asyncio.sleep(2)
    assert pending_at_kill == 1
    assert detail["counts"]["sent"] == n
    counts = assert_each_once(cluster.mails(), {a["email"] for a in actors})
    record("2 conferences kill -9 after 201, event only in outbox", pending_at_kill=pending_at_kill, **counts)


async def test_8_two_notifications_instances_share_a_fan_out_one_killed_midway(cluster: Cluster) -> None:
    n = 2000
    cluster.start_services(notifications=2)
    async with httpx.AsyncClient(timeout=30) as http:
        t0 = time.monotonic()
        actors = await register_actors(http, cluster.url("actors"), n, district="IX", parallel=32)
        t1 = time.monotonic()
        await wait_for_copies(cluster, n, timeout=240)
        t2 = time.monotonic()
        conference_id = await schedule(http, cluster.url("conferences"), district="IX")

        async def midway() -> int:
            total = cluster.mails().total
            return total if total >= n // 3 else 0

        sent_before_kill = await eventually(midway, timeout=240, interval=0.1)
        t3 = time.monotonic()
        cluster.kill("notifications-2")
        detail = await wait_for_outcomes(http, cluster, conference_id, n, timeout=300)
        t4 = time.monotonic()
        print(f"TIMING register={t1 - t0:.1f} copies={t2 - t1:.1f} to_midway={t3 - t2:.1f} rest={t4 - t3:.1f}")
    await asyncio.sleep(2)
    assert detail["counts"]["sent"] == n
    deliveries = cluster.database("notifications")["deliveries"]
    assert await deliveries.count_documents({"status": "sent"}) == n
    counts = assert_each_once(
        cluster.mails(), {a["email"] for a in actors}, allowed_crash_duplicates=cluster.in_flight_per_instance
    )
    record("8 two notifications instances, one kill -9 midway", sent_before_kill=sent_before_kill, **counts)
