"""Fault case: a cancellation arriving while invitations are still going out, with the
notifications service killed (-9) in the middle and restarted.

The events are published as the conferences service publishes them (only the notifications
service runs). Every invitee gets nothing, or the invitation and then its cancellation; never an
invitation after the cancellation. What a crash allows, and no more: an invitation the dead
instance had handed to the SMTP server may come twice (the same Message-ID), before its
cancellation.
"""

from __future__ import annotations

from typing import Any

from quartier_shared.events import INVITATIONS_TOPIC
from tests.faults.cluster import Cluster, record
from tests.helpers import caught_up, envelope_of, eventually, publish, publish_at_once
from tests.unit.notifications.fakes import actor, cancelled, invitation

GROUP = "notifications"
# Small claims: fewer invitations handed over at a time, so the cancellations catch many unsent.
CLAIM_SIZE, CLAIMS_IN_FLIGHT = 5, 2


async def test_a_cancellation_arriving_while_invitations_go_out_with_notifications_killed(cluster: Cluster) -> None:
    n = 40
    in_flight = cluster.in_flight_per_instance  # mails the SMTP server may have taken unrecorded
    cluster.services.service_env["notifications"] = {
        "DELIVERY_CLAIM_SIZE": str(CLAIM_SIZE),
        "DELIVERY_CLAIMS_IN_FLIGHT": str(CLAIMS_IN_FLIGHT),
    }
    cluster.start_services(actors=0, conferences=0)
    bootstrap = cluster.infra.kafka_bootstrap
    people = [actor(f"person{i}@example.org") for i in range(n)]
    issued = [invitation(p.actor_id) for p in people]
    await publish(bootstrap, [envelope_of(p) for p in people])
    contacts = cluster.database("notifications")["contacts"]

    async def known() -> bool:
        return await contacts.count_documents({}) == n

    await eventually(known, timeout=60)

    await publish_at_once(bootstrap, [envelope_of(i) for i in issued])
    sent_before_kill = await cluster.wait_for_mails(n // 4)
    cluster.kill("notifications")
    await publish_at_once(bootstrap, [envelope_of(cancelled(i)) for i in issued])
    cluster.restart("notifications")
    await eventually(lambda: caught_up(bootstrap, GROUP, INVITATIONS_TOPIC), timeout=180, interval=0.5)

    deliveries = cluster.database("notifications")["deliveries"]
    statuses = {d["_id"]: d["status"] async for d in deliveries.find({}, {"status": 1})}
    counts = check_order(cluster.mails().by_recipient, in_flight)
    assert set(statuses.values()) <= {"sent", "cancelled"}, statuses
    record(
        "12 a cancellation while invitations go out, notifications kill -9",
        invitees=n,
        sent_before_kill=sent_before_kill,
        **counts,
    )


def check_order(by_recipient: dict[str, list[str]], in_flight: int) -> dict[str, Any]:
    """Per recipient, the Message-IDs in the order the SMTP sink took them: nothing, or
    invitation(s) then one cancellation; never an invitation after it. Returns the counts."""
    duplicates = lone = 0
    for address, ids in by_recipient.items():
        kinds = [i[1:].split("-", 1)[0] for i in ids]
        invitations = [i for i, kind in zip(ids, kinds, strict=True) if kind == "invitation"]
        assert kinds.count("cancellation") == 1 and kinds[-1] == "cancellation", (address, kinds)
        assert set(kinds) <= {"invitation", "cancellation"}, (address, kinds)
        assert len(invitations) <= 2 and len(set(invitations)) <= 1, (address, ids)  # a crash's resend: same id
        duplicates += max(len(invitations) - 1, 0)
        lone += not invitations
    # Only what the killed instance had handed over may come twice; no cancellation comes alone.
    assert duplicates <= in_flight and lone == 0, (duplicates, lone)
    return {
        "recipients": len(by_recipient),
        "invited_then_cancelled": sum(1 for ids in by_recipient.values() if len(ids) > 1),
        "duplicate_invitations": duplicates,
        "cancellations_without_invitation": lone,
    }
