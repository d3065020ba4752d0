"""Fault cases 5, 6 and 7: SMTP refusals, poison messages, and the same event three times."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from quartier_shared import dead_letters as dlq
from quartier_shared.events import (
    ACTORS_TOPIC,
    ANSWERS_TOPIC,
    CONFERENCES_TOPIC,
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    DEAD_LETTER_TOPIC,
    DELIVERIES_TOPIC,
    ERASURES_TOPIC,
    INVITATIONS_TOPIC,
    TEAMS_TOPIC,
    UNSUBSCRIBES_TOPIC,
    ActorDeactivated,
    InvitationFailed,
)
from quartier_shared.outbox import pending_events
from quartier_shared.services import SERVICES
from tests.faults.cluster import (
    Cluster,
    assert_each_once,
    assert_invited_once,
    invite,
    record,
    register_actors,
    register_addresses,
    schedule,
    wait_for_copies,
    wait_for_outcomes,
)
from tests.helpers import envelope_of, envelopes, eventually, publish_raw, read_topic


def at_least(count: int) -> Callable[[list[Any]], bool]:
    return lambda records: len(records) >= count


# The sink counts refusals per address, and each actor's Art. 14 notice (sent at registration)
# meets them first: late1's notice gives up after its 4 attempts, then its invitation is refused
# once more and retried; late2's notice is retried once, its invitation sent at once.
@pytest.mark.smtp_answers(
    "late1@example.org=451x5", "late2@example.org=451x1", "never@example.org=451", "gone@example.org=550"
)
async def test_5_smtp_temporary_and_permanent_refusals(cluster: Cluster) -> None:
    cluster.start_services()
    scripted = ["late1@example.org", "late2@example.org", "never@example.org", "gone@example.org"]
    async with cluster.http() as http:
        normal = await register_actors(http, cluster.url("actors"), 10, district="VIII")
        special = await register_addresses(http, cluster.url("actors"), scripted, district="VIII")
        await wait_for_copies(cluster, 14)
        conference_id = await schedule(http, cluster.url("conferences"), district="VIII")
        detail = await wait_for_outcomes(http, cluster, conference_id, 14, timeout=120)
    await asyncio.sleep(2)
    by_actor = {i["actor_id"]: i for i in detail["invitations"]}
    reasons = {a["email"]: by_actor[a["id"]]["reason"] for a in special}
    statuses = {k: detail["counts"][k] for k in ("pending", "sent", "failed", "total")}
    assert statuses == {"pending": 0, "sent": 12, "failed": 2, "total": 14}
    assert reasons["gone@example.org"].startswith("SMTP 550")
    assert (
        reasons["never@example.org"].startswith("SMTP 451")
        and "gave up after 4 attempts" in reasons["never@example.org"]
    )
    expected = {a["email"] for a in normal} | {"late1@example.org", "late2@example.org"}
    counts = assert_each_once(cluster.mails(), expected)
    record("5 SMTP 451 (retried) and 550 (failed)", sent=12, failed=2, **counts)


async def test_6_poison_messages_on_every_consumed_topic_go_to_the_dead_letter_topic(cluster: Cluster) -> None:
    cluster.start_services()
    bootstrap = cluster.infra.kafka_bootstrap
    future = envelope_of(ActorDeactivated(actor_id="a-future", revision=9)).model_copy(update={"event_version": "2.0"})
    future_delivery = envelope_of(
        InvitationFailed(invitation_id="i", conference_id="c", actor_id="a", reason="r", failed_at=future.occurred_at)
    ).model_copy(update={"event_version": "3.1"})
    poison = {
        ACTORS_TOPIC: future.model_copy(update={"event_type": "ActorErased"}),  # both readers take it
        CONTACTS_TOPIC: future.model_copy(update={"event_type": "ContactChanged"}),
        CONFERENCES_TOPIC: future.model_copy(update={"event_type": "ConferenceScheduled"}),
        INVITATIONS_TOPIC: future.model_copy(update={"event_type": "InvitationIssued"}),
        DELIVERIES_TOPIC: future_delivery,
        ANSWERS_TOPIC: future.model_copy(update={"event_type": "InvitationAnswered"}),
        TEAMS_TOPIC: future.model_copy(update={"event_type": "CompetenceTeamChanged"}),
        ERASURES_TOPIC: future.model_copy(update={"event_type": "ActorErasureConfirmed"}),
        UNSUBSCRIBES_TOPIC: future.model_copy(update={"event_type": "UnsubscribeRequested"}),
    }
    for topic, unknown_version in poison.items():
        await publish_raw(bootstrap, topic, b"\x00\x01 garbage \xff", key=b"k")
        await publish_raw(bootstrap, topic, b'{"hello": "world"}', key=b"k")
        await publish_raw(bootstrap, topic, unknown_version.model_dump_json().encode(), key=b"k")
    # actors and conferences are consumed by two services each, so their poison is dead-lettered twice;
    # the erasures and unsubscribes topics by the actors service. The contact topic's poison goes to a
    # dead-letter topic of its own (contact events hold names and addresses).
    expected = {
        ("conferences", ACTORS_TOPIC): 3,
        ("notifications", ACTORS_TOPIC): 3,
        ("conferences", CONFERENCES_TOPIC): 3,
        ("notifications", CONFERENCES_TOPIC): 3,
        ("notifications", INVITATIONS_TOPIC): 3,
        ("conferences", DELIVERIES_TOPIC): 3,
        ("notifications", ANSWERS_TOPIC): 3,
        ("conferences", TEAMS_TOPIC): 3,
        ("actors", ERASURES_TOPIC): 3,
        ("actors", UNSUBSCRIBES_TOPIC): 3,
    }
    dead = await read_topic(bootstrap, DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 30, timeout=60)
    found = Counter((dict(r.headers)[dlq.SERVICE].decode(), dict(r.headers)[dlq.ORIGINAL_TOPIC].decode()) for r in dead)
    assert found == expected
    contact_dead = await read_topic(bootstrap, CONTACTS_DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 3, timeout=60)
    assert Counter(
        (dict(r.headers)[dlq.SERVICE].decode(), dict(r.headers)[dlq.ORIGINAL_TOPIC].decode()) for r in contact_dead
    ) == {("notifications", CONTACTS_TOPIC): 3}
    assert Counter(dict(r.headers)[dlq.ERROR_CLASS] for r in contact_dead) == {
        b"ValidationError": 2,
        b"UnknownEventVersion": 1,
    }
    for r in [*dead, *contact_dead]:
        headers = dict(r.headers)
        assert {dlq.PARTITION, dlq.OFFSET, dlq.ERROR_CLASS, dlq.ERROR_MESSAGE, dlq.FAILED_AT} <= set(headers)
    assert Counter(dict(r.headers)[dlq.ERROR_CLASS] for r in dead) == {
        b"ValidationError": 20,
        b"UnknownEventVersion": 10,
    }
    # Later valid events still flow on the same partitions.
    async with cluster.http() as http:
        actors, conference_id = await invite(http, cluster, 5, district="I")
        counts = await assert_invited_once(http, cluster, conference_id, actors)
    record(
        "6 poison messages on every consumed topic",
        dead_letters=len(dead),
        contact_dead_letters=len(contact_dead),
        **counts,
    )


async def test_7_every_event_delivered_three_times_has_one_effect(cluster: Cluster) -> None:
    n = 10
    cluster.start_services()
    bootstrap = cluster.infra.kafka_bootstrap
    async with cluster.http() as http:
        actors, conference_id = await invite(http, cluster, n, district="III")
        await wait_for_outcomes(http, cluster, conference_id, n)
        topics = (ACTORS_TOPIC, CONTACTS_TOPIC, CONFERENCES_TOPIC, INVITATIONS_TOPIC, DELIVERIES_TOPIC)
        originals = {t: await read_topic(bootstrap, t, until=lambda r: len(r) > 0) for t in topics}
        for topic, records in originals.items():
            for r in records * 2:
                await publish_raw(bootstrap, topic, r.value, key=r.key)
        # Wait until every copy was consumed: then each topic holds exactly three of each record.
        for topic, records in originals.items():
            await read_topic(bootstrap, topic, until=at_least(3 * len(records)))

        async def quiet() -> bool:
            pending = [await pending_events(cluster.database(s)) for s in SERVICES]
            return sum(pending) == 0

        await eventually(quiet)
        await asyncio.sleep(3)  # the consumers are a few hundred milliseconds behind the topic
        detail = (await http.get(f"{cluster.url('conferences')}/conferences/{conference_id}")).json()
    statuses = {k: detail["counts"][k] for k in ("pending", "sent", "failed", "total")}
    assert statuses == {"pending": 0, "sent": n, "failed": 0, "total": n}
    assert await cluster.database("conferences")["invitations"].count_documents({}) == n
    deliveries = cluster.database("notifications")["deliveries"]
    assert await deliveries.count_documents({"kind": "invitation"}) == n
    assert await deliveries.count_documents({"kind": "notice"}) == n  # one Art. 14 notice per actor, ever
    issued = await read_topic(bootstrap, INVITATIONS_TOPIC, until=lambda r: len(r) >= 3 * n)
    assert len({e.event_id for e in envelopes(issued)}) == n  # no new InvitationIssued was caused
    sent = await read_topic(bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= 3 * n)
    assert len({e.event_id for e in envelopes(sent)}) == n
    counts = assert_each_once(cluster.mails(), {a["email"] for a in actors})
    with_notices = cluster.mails(notices=True).by_recipient.values()
    assert all(len(ids) == len(set(ids)) == 2 for ids in with_notices)  # its notice, once, and its invitation
    record("7 every event three times", events_replayed=sum(2 * len(r) for r in originals.values()), **counts)
