"""Fault case 9: an answer delivered more than once (a duplicate, a republish, a replay from the
dead-letter topic with `quartier dlq replay`) is confirmed by one mail; a later answer by another."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quartier import dlq as dlq_tool
from quartier.common import Address
from quartier_shared import dead_letters as dlq
from quartier_shared.events import ANSWERS_TOPIC, InvitationAnswered
from tests.faults.cluster import Cluster, assert_each_once, invite, record, wait_for_outcomes
from tests.helpers import caught_up, envelope_of, eventually, publish, publish_raw, read_topic

GROUP = "notifications"  # its consumer group


def answer_to(invitation: dict[str, Any], conference_id: str, answer: str, attendees: int) -> InvitationAnswered:
    """An answer to this invitation, as the answer page records it."""
    return InvitationAnswered.model_validate(
        {
            "invitation_id": invitation["id"],
            "conference_id": conference_id,
            "actor_id": invitation["actor_id"],
            "answer": answer,
            "attendees": attendees,
            "answered_at": datetime.now(UTC),
        }
    )


async def test_9_an_answer_delivered_four_times_is_confirmed_once(cluster: Cluster) -> None:
    n = 3
    cluster.start_services()
    bootstrap = cluster.infra.kafka_bootstrap
    async with cluster.http() as http:
        actors, conference_id = await invite(http, cluster, n, district="II")
        detail = await wait_for_outcomes(http, cluster, conference_id, n)
        assert await cluster.wait_for_mails(n) == n
        invitation = detail["invitations"][0]
        address = next(a["email"] for a in actors if a["id"] == invitation["actor_id"])

        answered = envelope_of(answer_to(invitation, conference_id, "accepted", 2))
        await publish(bootstrap, [answered])
        assert await cluster.wait_for_mails(n + 1) == n + 1
        (original,) = await read_topic(bootstrap, ANSWERS_TOPIC, until=lambda r: len(r) >= 1)
        # The same record again: a duplicate, and a republish (an outbox relay that crashed after
        # Kafka took it) ...
        for _ in range(2):
            await publish_raw(bootstrap, ANSWERS_TOPIC, original.value, key=original.key)
        # ... and a dead letter of it that an operator replays.
        headers = {
            dlq.ORIGINAL_TOPIC: ANSWERS_TOPIC,
            dlq.PARTITION: str(original.partition),
            dlq.OFFSET: str(original.offset),
            dlq.SERVICE: GROUP,
            dlq.ERROR_CLASS: "UnknownInvitation",
            dlq.ERROR_MESSAGE: "no invitation mail known",
            dlq.FAILED_AT: datetime.now(UTC).isoformat(),
        }
        await publish_raw(bootstrap, dlq.DEAD_LETTER_TOPIC, original.value, key=original.key, headers=headers)
        (replayed,) = await dlq_tool.replay(Address(bootstrap, "the fault suite"), None, GROUP)
        assert replayed.topic == ANSWERS_TOPIC
        # Every copy was handled once the group committed past the end of the topic.
        await read_topic(bootstrap, ANSWERS_TOPIC, until=lambda r: len(r) >= 4)
        await eventually(lambda: caught_up(bootstrap, GROUP, ANSWERS_TOPIC), timeout=60)
        once = cluster.mails()

        # A later, different answer is a new event: a new confirmation.
        await publish(bootstrap, [envelope_of(answer_to(invitation, conference_id, "declined", 0))])
        assert await cluster.wait_for_mails(n + 2) == n + 2
        after = (await http.get(f"{cluster.url('conferences')}/conferences/{conference_id}")).json()

    assert once.total == n + 1
    confirmations = [m for m in once.by_recipient[address] if m.startswith("<confirmation-")]
    assert len(confirmations) == 1
    changed = [m for m in cluster.mails().by_recipient[address] if m.startswith("<confirmation-")]
    assert len(changed) == 2 and len(set(changed)) == 2
    # The invitations themselves: each once; and no confirmation changed an invitation's status.
    invitations_only = {
        a: [m for m in ids if m.startswith("<invitation-")] for a, ids in cluster.mails().by_recipient.items()
    }
    assert_each_once(type(once)(invitations_only), {a["email"] for a in actors})
    assert after["counts"]["sent"] == n and after["counts"]["failed"] == 0
    record(
        "9 an answer four times, then a changed answer",
        invitees=n,
        deliveries_of_the_answer=4,
        confirmations=len(changed),
    )
