"""Fault cases 1, 2 and 8: processes killed with -9 at the worst moments."""

from __future__ import annotations

import asyncio

import httpx

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
    for service in ("actors", "conferences", "notifications"):
        cluster.start(service)
    async with httpx.AsyncClient(timeout=30) as http:
        actors = await register_actors(http, cluster.url("actors"), n)
        await wait_for_copies(cluster, n)
        conference_id = await schedule(http, cluster.url("conferences"))

        async def some_sent() -> int:
            return cluster.mails().total >= n // 5 and cluster.mails().total

        sent_before_kill = await eventually(some_sent, timeout=120, interval=0.05)
        cluster.kill("notifications-1")
        await asyncio.sleep(1)
        cluster.restart("notifications-1")
        detail = await wait_for_outcomes(http, cluster, conference_id, n)
    await asyncio.sleep(2)  # a late duplicate would land now
    assert detail["counts"]["sent"] == n
    counts = assert_each_once(
        cluster.mails(), {a["email"] for a in actors}, allowed_crash_duplicates=cluster.in_flight_per_instance
    )
    record("1 notifications kill -9 mid fan-out", sent_before_kill=sent_before_kill, **counts)
