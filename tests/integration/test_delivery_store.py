"""The delivery store's contract, against MongoDB and against the in-memory fake the unit tests
use, so the fake keeps the real one's rules: new deliveries are stored already leased and an id
stored before is left alone; a claim takes what no live lease holds and nothing final; only the
claim holding a delivery records its outcome or gives it back. On MongoDB also: documents keep
the shape they had before the mappers were derived, and documents of that shape still read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from notifications.domain import Contact, Delivery, DeliveryStatus, Lease, LoggedOutcome, Outcome, OutcomeLogEntry
from notifications.repository import (
    DeliveryRepository,
    MongoContactRepository,
    MongoDeliveryRepository,
    MongoOutcomeLog,
)
from quartier_shared.events import EventContext
from tests.unit.notifications.fakes import CONFERENCE, FakeDeliveryRepository, FakeOutcomeLog

NOW = datetime.now(UTC).replace(microsecond=0)  # MongoDB keeps milliseconds
DELIVERY_FIELDS = {"_id", "kind", "invitation_id", "conference_id", "actor_id", "conference", "status"}
DELIVERY_FIELDS |= {"message_id", "reason", "lease_until", "attempts", "resend", "reply"}
DELIVERY_FIELDS |= {"previous", "confirm", "note", "reminder", "reminder_id"}
DELIVERY_FIELDS |= {"deferrals", "deferred_since", "next_attempt_at", "paced_until", "trigger"}
CONTACT_FIELDS = {"_id", "name", "email", "language", "consent_to_notifications", "active", "revision", "erased"}


def lease(token: str, seconds: float = 60) -> Lease:
    return Lease(token, NOW + timedelta(seconds=seconds))


def pending(count: int, actor_id: str | None = None) -> list[Delivery]:
    return [
        Delivery(
            id=Delivery.id_for(invitation_id, "invitation"),
            kind="invitation",
            invitation_id=invitation_id,
            conference_id=CONFERENCE.conference_id,
            actor_id=actor_id or str(uuid.uuid4()),
            conference=CONFERENCE,
            status=DeliveryStatus.PENDING,
            message_id=f"<invitation-{invitation_id}@essen.example.org>",
        )
        for invitation_id in (str(uuid.uuid4()) for _ in range(count))
    ]


async def claimed_not_handed(repository: DeliveryRepository, new: list[Delivery], held_by: Lease) -> list[Delivery]:
    """Stored, then leased by a claim that has not handed them over yet (new deliveries are stored
    handed over already: their sending follows at once)."""
    await repository.add_waiting(new)
    return await repository.claim([d.id for d in new], held_by, NOW)


def ids(deliveries: list[Delivery]) -> set[str]:
    return {d.id for d in deliveries}


@pytest.fixture
async def mongo(mongo_uri: str, database_name: str) -> AsyncIterator[MongoDeliveryRepository]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    yield MongoDeliveryRepository(client[database_name])
    await client.close()


@pytest.fixture(params=["mongodb", "in-memory"])
def deliveries(request: pytest.FixtureRequest) -> DeliveryRepository:
    if request.param == "in-memory":
        return FakeDeliveryRepository()
    repository: MongoDeliveryRepository = request.getfixturevalue("mongo")
    return repository


async def test_new_deliveries_are_stored_claimed_and_an_id_stored_before_is_left_alone(
    deliveries: DeliveryRepository,
) -> None:
    first, later = pending(3), pending(2)
    taken = await deliveries.add_claimed(first, lease("one"))
    assert [d.id for d in taken] == [d.id for d in first]
    assert {(d.status, d.lease_until) for d in taken} == {(DeliveryStatus.SENDING, lease("one").until)}

    # Another instance stores the first three and two new ones: it gets only the new ones.
    again = await deliveries.add_claimed(first + later, lease("two"))
    assert [d.id for d in again] == [d.id for d in later]
    assert await deliveries.finish([Outcome(d, DeliveryStatus.SENT) for d in first], "two", NOW) == set()
    assert await deliveries.finish([Outcome(d, DeliveryStatus.SENT) for d in first], "one", NOW) == ids(first)

    # Waiting for contact data: stored as waiting; one stored before keeps its state.
    waiting = pending(1)
    await deliveries.add_waiting(waiting + later[:1])
    stored = await deliveries.get_many([waiting[0].id, later[0].id])
    assert stored[waiting[0].id].status is DeliveryStatus.WAITING_FOR_CONTACT
    assert stored[later[0].id].status is DeliveryStatus.SENDING


async def test_a_claim_takes_what_no_live_lease_holds_and_nothing_final(deliveries: DeliveryRepository) -> None:
    waiting, given_back = pending(1), pending(1)
    await deliveries.add_waiting(waiting)
    await deliveries.add_claimed(given_back, lease("unsent"))
    await deliveries.release([given_back[0].id], "unsent")
    live = await deliveries.add_claimed(pending(1), lease("live"))
    ran_out = await deliveries.add_claimed(pending(1), lease("crashed", seconds=-1))
    done = await deliveries.add_claimed(pending(1), lease("done"))
    await deliveries.finish([Outcome(done[0], DeliveryStatus.SENT)], "done", NOW)

    everything = waiting + given_back + live + ran_out + done
    claimed = await deliveries.claim([d.id for d in everything], lease("new"), NOW)

    assert ids(claimed) == ids(waiting + given_back + ran_out)
    assert {(d.status, d.lease_until) for d in claimed} == {(DeliveryStatus.SENDING, lease("new").until)}
    # The claim whose lease ran out can no longer record an outcome, nor give the delivery back.
    assert await deliveries.finish([Outcome(ran_out[0], DeliveryStatus.SENT)], "crashed", NOW) == set()
    await deliveries.release([ran_out[0].id], "crashed")
    assert (await deliveries.get_many([ran_out[0].id]))[ran_out[0].id].status is DeliveryStatus.SENDING


async def test_outcomes_are_recorded_only_for_deliveries_the_claim_still_holds(deliveries: DeliveryRepository) -> None:
    mine = await deliveries.add_claimed(pending(4), lease("one"))
    # The lease on the last one ran out and another claim took it over.
    later = lease("one").until + timedelta(seconds=1)
    assert ids(await deliveries.claim([mine[3].id], Lease("two", later + timedelta(seconds=60)), later)) == {mine[3].id}
    sent, bounced, taken_over = mine[:2], mine[2], mine[3]

    outcomes = [Outcome(d, DeliveryStatus.SENT) for d in [*sent, taken_over]]
    held = await deliveries.finish([*outcomes, Outcome(bounced, DeliveryStatus.FAILED, "SMTP 550")], "one", NOW)

    assert held == ids([*sent, bounced])
    stored = await deliveries.get_many(d.id for d in mine)
    assert [stored[d.id].status for d in mine] == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.SENDING,  # left to the claim holding it now
    ]
    assert stored[bounced.id].reason == "SMTP 550"
    # Recorded once: the same outcomes again change nothing and report nothing held.
    assert await deliveries.finish(outcomes, "one", NOW) == set()


async def test_deliveries_are_found_by_the_contact_they_wait_for_and_by_conference(
    deliveries: DeliveryRepository,
) -> None:
    waiting, sending = pending(2, actor_id="actor-1"), pending(1, actor_id="actor-1")
    await deliveries.add_waiting([*waiting, *pending(1, actor_id="actor-2")])
    await deliveries.add_claimed(sending, lease("one"))
    other_conference = replace(pending(1)[0], conference_id="another-conference")
    await deliveries.add_waiting([other_conference])

    assert ids(await deliveries.waiting_for("actor-1")) == ids(waiting)
    listed = await deliveries.for_conference(CONFERENCE.conference_id)
    assert [d.id for d in listed] == sorted(d.id for d in listed) and len(listed) == 4
    assert [d.id for d in await deliveries.for_conference("another-conference")] == [other_conference.id]


async def test_documents_keep_their_stored_shape(mongo: MongoDeliveryRepository) -> None:
    claimed, waiting = pending(1)[0], pending(1)[0]
    await mongo.add_claimed([claimed], lease("one"))
    await mongo.add_waiting([waiting])
    docs = {doc["_id"]: doc async for doc in mongo.collection.find()}
    leased, stored_waiting = docs[claimed.id], docs[waiting.id]
    assert set(leased) == DELIVERY_FIELDS | {"claim", "handed"}
    assert (leased["status"], leased["claim"], leased["handed"], leased["attempts"]) == ("sending", "one", "one", 1)
    assert set(stored_waiting) == DELIVERY_FIELDS
    assert (stored_waiting["status"], stored_waiting["attempts"]) == ("waiting_for_contact", 0)

    contacts = MongoContactRepository(mongo.collection.database)
    contact = Contact("actor-1", "Runder Tisch", "tisch@example.org", "en", True, True, revision=2)
    await contacts.save(contact)
    stored = await contacts.collection.find_one({"_id": "actor-1"})
    assert stored is not None and set(stored) == CONTACT_FIELDS
    assert await contacts.get("actor-1") == contact


async def test_documents_written_before_the_derived_mappers_still_read_and_claim(
    mongo: MongoDeliveryRepository,
) -> None:
    (delivery,) = pending(1)
    await mongo.collection.insert_one(
        {  # as the hand-written mapper stored it: conference times as ISO text
            "_id": delivery.id,
            "kind": "invitation",
            "invitation_id": delivery.invitation_id,
            "conference_id": delivery.conference_id,
            "actor_id": delivery.actor_id,
            "conference": CONFERENCE.model_dump(mode="json"),
            "status": "waiting_for_contact",
            "message_id": delivery.message_id,
            "reason": None,
            "lease_until": None,
            "attempts": 0,
        }
    )
    assert await mongo.get_many([delivery.id]) == {
        delivery.id: replace(delivery, status=DeliveryStatus.WAITING_FOR_CONTACT)
    }
    (claimed,) = await mongo.claim([delivery.id], lease("one"), NOW)
    assert claimed.conference == CONFERENCE
    assert await mongo.finish([Outcome(claimed, DeliveryStatus.SENT)], "one", NOW) == {delivery.id}


async def test_latest_invitations_gives_each_invitations_delivery_with_the_latest_conference(
    deliveries: DeliveryRepository,
) -> None:
    """What a confirmation is written from: of an invitation's deliveries (the mail and its
    resends), the one with the highest conference sequence, then the highest resend; never a
    confirmation; nothing for an invitation without one."""
    first, other = pending(2)
    later = CONFERENCE.model_copy(update={"sequence": CONFERENCE.sequence + 1, "title": "verlegt"})
    resent = replace(first, id=Delivery.id_for(first.invitation_id, "invitation", 1), resend=1, conference=later)
    resent_again = replace(first, id=Delivery.id_for(first.invitation_id, "invitation", 2), resend=2)
    confirmation = replace(first, id=Delivery.confirmation_id("event-1"), kind="confirmation", conference=later)
    await deliveries.add_waiting([first, resent, resent_again, confirmation, other])

    found = await deliveries.latest_invitations([first.invitation_id, other.invitation_id, "never-mailed"])

    assert set(found) == {first.invitation_id, other.invitation_id}
    assert found[first.invitation_id].id == resent.id and found[first.invitation_id].conference.title == "verlegt"
    assert found[other.invitation_id].id == other.id


# --- what a cancellation and an update do to deliveries not sent yet ---------------------------------


async def test_hand_over_sends_what_no_cancellation_reached_with_the_details_stored_now(
    deliveries: DeliveryRepository,
) -> None:
    kept, stopped = pending(2)
    await claimed_not_handed(deliveries, [kept, stopped], lease("one"))
    newer = CONFERENCE.model_copy(update={"title": "Neuer Titel", "sequence": 1})
    await deliveries.refresh([kept.invitation_id], newer)
    await deliveries.cancel_unsent([stopped.invitation_id], "cancelled", NOW)

    assert (await deliveries.hand_over([kept.id, stopped.id], "other")).send == []  # only the holder
    handed = await deliveries.hand_over([kept.id, stopped.id], "one")

    assert [(d.id, d.conference) for d in handed.send] == [(kept.id, newer)]
    assert handed.cancelled == {stopped.id}
    # Once handed over it may have gone out: an update leaves it as it is, and a later claim (after
    # a crash) sends it again even though it was cancelled since, so its cancellation follows it.
    await deliveries.refresh([kept.invitation_id], CONFERENCE.model_copy(update={"sequence": 2}))
    await deliveries.cancel_unsent([kept.invitation_id], "cancelled", NOW)
    (taken_over,) = await deliveries.claim([kept.id], lease("two"), NOW + timedelta(minutes=5))
    assert taken_over.conference == newer
    after_crash = await deliveries.hand_over([kept.id], "two")
    assert ([d.id for d in after_crash.send], after_crash.cancelled) == ([kept.id], set())


async def test_refresh_gives_newer_details_to_invitations_not_handed_over_and_nothing_else(
    deliveries: DeliveryRepository,
) -> None:
    waiting, leased, sent = pending(1, actor_id="a"), pending(1), pending(1)
    await deliveries.add_waiting(waiting)
    await claimed_not_handed(deliveries, leased + sent, lease("one"))
    await deliveries.hand_over([sent[0].id], "one")
    await deliveries.finish([Outcome(sent[0], DeliveryStatus.SENT)], "one", NOW)
    newer, older = (CONFERENCE.model_copy(update={"venue": CONFERENCE.venue, "sequence": n}) for n in (2, 1))
    everyone = [d.invitation_id for d in waiting + leased + sent]

    await deliveries.refresh(everyone, newer)
    await deliveries.refresh(everyone, older)  # never back to an older sequence

    stored = await deliveries.get_many([d.id for d in waiting + leased + sent])
    assert [stored[d.id].conference.sequence for d in waiting + leased + sent] == [2, 2, 0]


async def test_a_cancellation_ends_what_is_unclaimed_and_stops_what_is_leased(deliveries: DeliveryRepository) -> None:
    (invitation,) = pending(1)
    await deliveries.add_waiting([invitation])
    update = replace(invitation, id=f"update:{invitation.invitation_id}:seq-1", kind="update")
    confirmation = replace(invitation, id="confirmation:x", kind="confirmation")
    await claimed_not_handed(deliveries, [update, confirmation], lease("one"))
    other = pending(1)

    await deliveries.add_cancelled([invitation, *other])
    stored = await deliveries.get_many([invitation.id, other[0].id])
    assert stored[invitation.id].status is DeliveryStatus.WAITING_FOR_CONTACT  # stored before: left as it was
    assert stored[other[0].id].status is DeliveryStatus.CANCELLED

    await deliveries.cancel_unsent([invitation.invitation_id], "cancelled", NOW)

    found = {d.id: d for d in await deliveries.of_invitations([invitation.invitation_id])}
    assert (found[invitation.id].status, found[invitation.id].reason) == (DeliveryStatus.CANCELLED, "cancelled")
    assert found[update.id].status is DeliveryStatus.SENDING  # its claim finds out at the hand-over
    handed = await deliveries.hand_over([update.id, confirmation.id], "one")
    assert [d.id for d in handed.send] == [confirmation.id]  # an answer's confirmation is not stopped
    assert handed.cancelled == {update.id}


async def test_cancelling_an_erased_actors_unsent_deliveries_leaves_the_sent_and_drops_the_claim(
    deliveries: DeliveryRepository,
) -> None:
    sent, sending, waiting = pending(3, actor_id="erased-1")
    (someone_elses,) = pending(1)
    await deliveries.add_claimed([sent, sending], lease("one"))
    assert await deliveries.finish([Outcome(sent, DeliveryStatus.SENT)], "one", NOW) == {sent.id}
    await deliveries.add_waiting([waiting, someone_elses])

    cancelled = await deliveries.cancel_unsent_of_actor("erased-1", "not sent: the actor was erased", NOW)

    assert ids(cancelled) == {sending.id, waiting.id}
    stored = {d.id: d for d, _ in await deliveries.of_actor("erased-1", 10)}
    assert [d.id for d, _ in await deliveries.of_actor("erased-1", 10)] == sorted(stored)
    assert stored[sent.id].status is DeliveryStatus.SENT
    for delivery_id in (sending.id, waiting.id):
        assert (stored[delivery_id].status, stored[delivery_id].reason) == (
            DeliveryStatus.FAILED,
            "not sent: the actor was erased",
        )
    # the claim that was sending it can no longer record an outcome, nor claim it again
    assert await deliveries.finish([Outcome(sending, DeliveryStatus.SENT)], "one", NOW) == set()
    assert await deliveries.claim([sending.id, waiting.id], lease("two"), NOW) == []
    assert (await deliveries.get_many([someone_elses.id]))[
        someone_elses.id
    ].status is DeliveryStatus.WAITING_FOR_CONTACT
    assert len(await deliveries.of_actor("erased-1", 2)) == 2


async def test_a_deferred_delivery_is_given_back_with_its_next_attempt_and_claimed_once_due(
    deliveries: DeliveryRepository,
) -> None:
    soon, later, sent = await deliveries.add_claimed(pending(3), lease("one"))
    await deliveries.hand_over([soon.id, later.id, sent.id], "one")
    trigger = EventContext("notifications", "correlation-1", "event-1", "subject-1")
    counted = replace(soon, deferrals=1, deferred_since=NOW, trigger=trigger)
    outcomes = [
        Outcome(counted, DeliveryStatus.DEFERRED, "SMTP 451: slow down", retry_at=NOW + timedelta(seconds=60)),
        Outcome(
            replace(later, deferrals=3, deferred_since=NOW),
            DeliveryStatus.DEFERRED,
            "SMTP 421",
            NOW + timedelta(hours=1),
        ),
        Outcome(sent, DeliveryStatus.SENT),
    ]
    assert await deliveries.finish(outcomes, "one", NOW) == {soon.id, later.id, sent.id}

    stored = await deliveries.get_many([soon.id])
    assert replace(stored[soon.id], conference=CONFERENCE) == replace(
        soon,
        status=DeliveryStatus.DEFERRED,
        reason="SMTP 451: slow down",
        lease_until=None,
        deferrals=1,
        deferred_since=NOW,
        next_attempt_at=NOW + timedelta(seconds=60),
        trigger=trigger,
    )
    assert not await deliveries.renew(soon.id, "one", NOW + timedelta(minutes=5))  # given back
    # Given back unsent: an update may still refresh it, a cancellation cancel it.
    assert (await deliveries.hand_over([soon.id], "one")).send == []
    assert await deliveries.claim_due(NOW, lease("two"), 10) == []  # not due yet

    (taken,) = await deliveries.claim_due(NOW + timedelta(seconds=61), lease("two", 90), 10)
    assert (taken.id, taken.status) == (soon.id, DeliveryStatus.SENDING)
    assert await deliveries.claim_due(NOW + timedelta(seconds=61), lease("three"), 10) == []  # held
    assert await deliveries.renew(soon.id, "two", NOW + timedelta(minutes=5))
    assert (await deliveries.get_many([soon.id]))[soon.id].lease_until == NOW + timedelta(minutes=5)

    # An hour on: the later one is due, and the one "two" took was never recorded (its instance
    # died): its lease ran out, and no event brings it back, so it is taken again.
    due = await deliveries.claim_due(NOW + timedelta(hours=1), lease("four", 7200), 10)
    assert {d.id for d in due} == {soon.id, later.id}
    assert await deliveries.claim_due(NOW + timedelta(hours=1), lease("five"), 10) == []


async def test_a_deferred_delivery_is_cancelled_by_a_cancellation_and_claimable_before_it_is_due(
    deliveries: DeliveryRepository,
) -> None:
    first, second = await deliveries.add_claimed(pending(2), lease("one"))
    retry_at = NOW + timedelta(hours=1)
    await deliveries.finish(
        [Outcome(d, DeliveryStatus.DEFERRED, "SMTP 451", retry_at) for d in (first, second)], "one", NOW
    )

    await deliveries.cancel_unsent([first.invitation_id], "cancelled", NOW)
    # A redelivered event, or an update settling it, may try it before it is due.
    claimed = await deliveries.claim([first.id, second.id], lease("two"), NOW)

    assert [d.id for d in claimed] == [second.id]
    assert (await deliveries.get_many([first.id]))[first.id].status is DeliveryStatus.CANCELLED


@pytest.fixture(params=["mongodb", "fake"])
async def outcome_log(request: pytest.FixtureRequest, mongo_uri: str, database_name: str) -> AsyncIterator[Any]:
    if request.param == "fake":
        yield FakeOutcomeLog()
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    yield MongoOutcomeLog(client[database_name])
    await client.close()


def logged(owner: str, at: datetime, *outcomes: LoggedOutcome) -> OutcomeLogEntry:
    return OutcomeLogEntry(uuid.uuid4().hex, owner, at, outcomes)


async def test_the_outcome_log_keeps_each_outcome_whole_and_reads_by_owner_and_age(outcome_log: Any) -> None:
    trigger = EventContext("conferences", "correlation-1", causation_id="event-1", initiated_by="subject-1")
    deferred = LoggedOutcome(
        delivery_id="invitation:1",
        token="claim-1",
        status=DeliveryStatus.DEFERRED,
        at=NOW,
        context=trigger,
        reason="SMTP 451: 4.7.0 slow down",
        retry_at=NOW + timedelta(minutes=1),
        deferrals=2,
        deferred_since=NOW - timedelta(minutes=5),
        paced_until=None,
        trigger=trigger,
    )
    sent = LoggedOutcome("invitation:2", "claim-1", DeliveryStatus.SENT, NOW, EventContext("notifications", "c-2"))
    older = logged("instance-a", NOW - timedelta(seconds=30), deferred, sent)
    newer = logged("instance-b", NOW, sent)
    for entry in (newer, older):
        await outcome_log.add(entry)

    assert await outcome_log.of_owner("instance-a", 10) == [older]  # every field as it was logged
    assert await outcome_log.oldest(10) == [older, newer]
    assert await outcome_log.oldest(1) == [older]
    assert await outcome_log.oldest(10, before=NOW - timedelta(seconds=10)) == [older]

    await outcome_log.remove([older.id])
    assert await outcome_log.oldest(10) == [newer]
