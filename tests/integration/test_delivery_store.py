"""The notifications service's delivery records against a real database: new deliveries are
stored already leased to one claim, and an id another instance stored first is left alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from notifications.domain import Delivery, DeliveryStatus, Lease, Outcome
from notifications.repository import MongoDeliveryRepository
from tests.integration.test_notifications_service import CONFERENCE


def lease(token: str) -> Lease:
    return Lease(token, datetime.now(UTC) + timedelta(seconds=60))


def pending(count: int) -> list[Delivery]:
    return [
        Delivery(
            id=Delivery.id_for(invitation_id, "invitation"),
            kind="invitation",
            invitation_id=invitation_id,
            conference_id=CONFERENCE.conference_id,
            actor_id=str(uuid.uuid4()),
            conference=CONFERENCE,
            status=DeliveryStatus.PENDING,
        )
        for invitation_id in (str(uuid.uuid4()) for _ in range(count))
    ]


async def test_new_deliveries_are_stored_claimed_and_a_second_claimer_gets_none(
    mongo_uri: str, database_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    deliveries = MongoDeliveryRepository(client[database_name])
    first, later = pending(3), pending(2)
    taken = await deliveries.add_claimed(first, lease("one"))
    assert [d.id for d in taken] == [d.id for d in first]
    assert {d.status for d in taken} == {DeliveryStatus.SENDING}

    # Another instance stores the first three and two new ones: it gets only the new ones.
    again = await deliveries.add_claimed(first + later, lease("two"))
    assert [d.id for d in again] == [d.id for d in later]
    stored = await deliveries.get_many(d.id for d in first + later)
    claims = {doc["_id"]: doc["claim"] async for doc in deliveries.collection.find({}, {"claim": 1})}
    assert {claims[d.id] for d in first} == {"one"} and {claims[d.id] for d in later} == {"two"}
    assert all(stored[d.id].lease_until is not None for d in first + later)

    # Waiting for contact data: stored as waiting, an existing one keeps its state.
    waiting = pending(1)
    await deliveries.add_waiting(waiting + first[:1])
    stored = await deliveries.get_many([waiting[0].id, first[0].id])
    assert stored[waiting[0].id].status is DeliveryStatus.WAITING_FOR_CONTACT
    assert stored[first[0].id].status is DeliveryStatus.SENDING
    await client.close()


async def test_outcomes_are_recorded_only_for_deliveries_the_claim_still_holds(
    mongo_uri: str, database_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    deliveries = MongoDeliveryRepository(client[database_name])
    mine = await deliveries.add_claimed(pending(4), lease("one"))
    # The lease on the last one ran out and another instance took it over.
    await deliveries.collection.update_one({"_id": mine[3].id}, {"$set": {"claim": "two"}})
    sent, bounced, taken_over = mine[:2], mine[2], mine[3]

    outcomes = [Outcome(d, DeliveryStatus.SENT) for d in [*sent, taken_over]]
    now = datetime.now(UTC)
    held = await deliveries.finish([*outcomes, Outcome(bounced, DeliveryStatus.FAILED, "SMTP 550")], "one", now)

    assert held == {d.id for d in [*sent, bounced]}
    stored = await deliveries.get_many(d.id for d in mine)
    assert [stored[d.id].status for d in mine] == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.SENDING,  # left to the instance holding it now
    ]
    assert stored[bounced.id].reason == "SMTP 550"
    # Recorded once: the same outcomes again change nothing and report nothing held.
    assert await deliveries.finish(outcomes, "one", now) == set()
    await client.close()
