"""Fault case 10: conferences killed (-9) in the middle of the fan-out of a change; after the
restart every invitation is told once (one InvitationUpdated event id each), none twice.
Fault case 11: a cancellation arriving while the invitations are still going out; no invitation
is issued after it, and each one issued before it is cancelled once, after its invitation."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from quartier_shared.events import INVITATIONS_TOPIC
from quartier_shared.outbox import pending_events
from tests.faults.cluster import Cluster, record, register_actors, schedule, wait_for_copies
from tests.helpers import CONFERENCE_DAY, envelopes, eventually, read_to_end


async def test_10_conferences_killed_mid_update_fan_out_then_restarted(cluster: Cluster) -> None:
    n = 120
    # Two invitations per transaction: the fan-out takes long enough to be caught in the middle.
    cluster.services.service_env["conferences"] = {"FANOUT_BATCH_SIZE": "2"}
    cluster.start_services()
    invitations = cluster.database("conferences")["invitations"]
    async with cluster.http() as http:
        await register_actors(http, cluster.url("actors"), n, district="VI")
        await wait_for_copies(cluster, n)
        conference_id = await schedule(http, cluster.url("conferences"), district="VI")

        async def all_issued() -> bool:
            return await invitations.count_documents({"conference_id": conference_id}) == n

        await eventually(all_issued, timeout=120, interval=0.2)
        moved = {"starts_at": f"{CONFERENCE_DAY}T18:00:00+01:00", "ends_at": f"{CONFERENCE_DAY}T21:00:00+01:00"}
        changed = await http.patch(f"{cluster.url('conferences')}/conferences/{conference_id}", json=moved)
        assert changed.status_code == 200, changed.text

        async def midway() -> int:
            told = await invitations.count_documents({"conference_id": conference_id, "sequence": 1})
            return told if 0 < told < n else 0

        told_at_kill = await eventually(midway, timeout=60, interval=0.01)
        cluster.kill("conferences")
        cluster.restart("conferences")

        async def all_told_and_relayed() -> bool:
            told = await invitations.count_documents({"conference_id": conference_id, "sequence": 1})
            return told == n and await pending_events(cluster.database("conferences")) == 0

        await eventually(all_told_and_relayed, timeout=120, interval=0.2)
        logs = cluster.logs()

    # The restarted instance resumed: its fan-out told only the invitations not yet told (each
    # batch's events commit with the sequence on its invitations), not all of them again.
    finished = [
        json.loads(line[line.index("{") :])
        for line in logs.splitlines()
        if '"invitations_told"' in line and conference_id in line
    ]
    assert len(finished) == 1 and 0 < finished[0]["told"] <= n - told_at_kill, finished

    updates = envelopes(await read_to_end(cluster.infra.kafka_bootstrap, INVITATIONS_TOPIC), "InvitationUpdated")
    event_ids: dict[str, set[str]] = defaultdict(set)
    for e in updates:
        event_ids[e.payload["invitation_id"]].add(e.event_id)
    assert len(event_ids) == n
    twice: dict[str, Any] = {k: v for k, v in event_ids.items() if len(v) > 1}
    assert not twice, list(twice.items())[:5]
    assert {e.payload["conference"]["sequence"] for e in updates} == {1}
    record(
        "10 conferences kill -9 mid update fan-out",
        invitees=n,
        told_before_kill=told_at_kill,
        told_after_restart=finished[0]["told"],
        updates_on_kafka=len(updates),
        distinct_update_events=sum(len(v) for v in event_ids.values()),
    )


async def test_11_a_cancellation_while_the_invitations_are_still_going_out(cluster: Cluster) -> None:
    n = 120
    cluster.services.service_env["conferences"] = {"FANOUT_BATCH_SIZE": "2"}
    cluster.start_services()
    invitations = cluster.database("conferences")["invitations"]
    async with cluster.http() as http:
        await register_actors(http, cluster.url("actors"), n, district="VII")
        await wait_for_copies(cluster, n)
        conference_id = await schedule(http, cluster.url("conferences"), district="VII")

        async def going_out() -> int:
            return await invitations.count_documents({"conference_id": conference_id})

        await eventually(going_out, timeout=60, interval=0.01)
        cancelled = await http.delete(f"{cluster.url('conferences')}/conferences/{conference_id}")
        assert cancelled.status_code == 200, cancelled.text
        issued_at_cancel = await going_out()

        async def all_cancelled_and_relayed() -> bool:
            told = await invitations.count_documents({"conference_id": conference_id, "sequence": 1})
            return told == await going_out() and await pending_events(cluster.database("conferences")) == 0

        await eventually(all_cancelled_and_relayed, timeout=120, interval=0.2)
        stored = await going_out()

    on_topic = envelopes(await read_to_end(cluster.infra.kafka_bootstrap, INVITATIONS_TOPIC))
    per_invitation: dict[str, list[str]] = defaultdict(list)
    for e in on_topic:  # in the order of each invitation's partition
        if e.payload["conference_id"] == conference_id:
            per_invitation[e.payload["invitation_id"]].append(e.event_type)
    assert 0 < stored < n and len(per_invitation) == stored
    assert {tuple(kinds) for kinds in per_invitation.values()} == {("InvitationIssued", "InvitationCancelled")}
    record(
        "11 a cancellation while the invitations are still going out",
        invitees=n,
        issued_when_cancelled=issued_at_cancel,
        issued_in_all=stored,
        cancelled=len(per_invitation),
    )
