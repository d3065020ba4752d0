"""Fault cases 1, 2 and 8: processes killed with -9 at the worst moments."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from typing import Any

from quartier_shared.events import INVITATIONS_TOPIC
from quartier_shared.outbox import pending_events
from tests.faults.cluster import (
    Cluster,
    assert_each_once,
    assert_invited_once,
    record,
    register_actors,
    schedule,
    wait_for_copies,
)
from tests.helpers import caught_up, envelope_of, eventually, publish_at_once
from tests.unit.notifications.fakes import actor, invitation


async def test_1_notifications_killed_three_times_during_a_2000_invitation_fan_out(cluster: Cluster) -> None:
    """The crash window's bound: at each kill, at most one mail per SMTP connection was taken by
    the SMTP server without its outcome recorded, and only those come twice (same Message-ID).

    Only notifications runs; the contact and invitation events are published as the actors and
    conferences services publish them (cases 2 and 8 cover the way there). The kills land at
    random moments, drawn from a seed that is printed (FAULT_SEED=... repeats a run)."""
    n, kills, connections = 2000, 3, cluster.in_flight_per_instance
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"FAULT_SEED={seed}")  # shown with the failure
    moments = sorted(random.Random(seed).sample(range(n // 20, n * 17 // 20), kills))  # mails received
    cluster.services.service_env["notifications"] = {"SMTP_CONNECTIONS": str(connections)}
    cluster.start_services(actors=0, conferences=0)
    bootstrap = cluster.infra.kafka_bootstrap
    people = [actor(f"person{i}@example.org") for i in range(n)]
    await publish_at_once(bootstrap, [envelope_of(p) for p in people])
    deliveries = cluster.database("notifications")["deliveries"]
    outcome_log = cluster.database("notifications")["outcome_log"]
    contacts = cluster.database("notifications")["contacts"]
    await eventually(lambda: _counted(contacts, {}, n), timeout=120)

    started = time.monotonic()
    await publish_at_once(bootstrap, [envelope_of(invitation(p.actor_id)) for p in people])
    windows: list[int] = []
    sent_at_kills: list[int] = []
    timeline: list[str] = []
    copies_before: Counter[str] = Counter()  # Message-ID -> copies the sink held at the kill before
    old_claims: set[str] = set()  # claims of instances killed before
    for at in moments:
        await cluster.wait_for_mails(at, timeout=240)
        cluster.kill("notifications")
        timeline.append(f"kill@{time.monotonic() - started:.1f}")
        # The dead instance's crash window: its deliveries not recorded (held by its claims, not
        # by a claim of an instance killed before, and no outcome of them in the outcome log, which
        # counts as recorded: the next claim folds it first) whose mail the sink took since the
        # kill before.
        copies = Counter(i for ids in cluster.mails().by_recipient.values() for i in ids)
        logged = {o["delivery_id"] async for entry in outcome_log.find() for o in entry["outcomes"]}
        open_ = [d async for d in deliveries.find({"status": "sending"}, {"message_id": 1, "claim": 1})]
        mine = [d["message_id"] for d in open_ if d["claim"] not in old_claims and d["_id"] not in logged]
        windows.append(sum(1 for i in mine if copies[i] > copies_before[i]))
        sent_at_kills.append(copies.total())
        copies_before, old_claims = copies, old_claims | {d["claim"] for d in open_}
        cluster.restart("notifications")
        timeline.append(f"ready@{time.monotonic() - started:.1f}")
    await eventually(lambda: _counted(deliveries, {"status": "sent"}, n), timeout=300, interval=0.5)
    await eventually(lambda: caught_up(bootstrap, "notifications", INVITATIONS_TOPIC), timeout=60, interval=0.5)
    await asyncio.sleep(2)  # a late duplicate would land now
    elapsed = time.monotonic() - started

    print(f"TIMING fan_out={elapsed:.1f}s {' '.join(timeline)} sent_at_kills={sent_at_kills} windows={windows}")
    assert all(w <= connections for w in windows), (seed, windows)
    # A mail resent after one kill may be in the next kill's window too: a third copy, still one
    # Message-ID, and counted against that kill.
    counts = assert_each_once(cluster.mails(), {p.email for p in people}, connections * kills, max_copies=kills + 1)
    record(
        "1 notifications kill -9 three times during a fan-out",
        seed=seed,
        sent_at_kills=sent_at_kills,
        unrecorded_at_kills=windows,
        fan_out_seconds=round(elapsed, 1),
        **counts,
    )


async def _counted(collection: Any, query: dict[str, Any], expected: int) -> bool:
    return bool(await collection.count_documents(query) >= expected)


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
