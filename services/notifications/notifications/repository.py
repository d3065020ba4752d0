"""Storage of the notifications service: contacts and deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from quartier_shared.events import ConferenceDetails

from .domain import Contact, Delivery, DeliveryStatus

Document = dict[str, Any]


class MongoContactRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db["contacts"]
        self.session = session

    async def get(self, actor_id: str) -> Contact | None:
        doc = await self.collection.find_one({"_id": actor_id}, session=self.session)
        if doc is None:
            return None
        return Contact(
            actor_id=doc["_id"],
            name=doc["name"],
            email=doc["email"],
            language=doc["language"],
            consent_to_notifications=doc["consent_to_notifications"],
            active=doc["active"],
            revision=doc["revision"],
        )

    async def save(self, c: Contact) -> None:
        doc = {
            "name": c.name,
            "email": c.email,
            "language": c.language,
            "consent_to_notifications": c.consent_to_notifications,
            "active": c.active,
            "revision": c.revision,
        }
        await self.collection.replace_one({"_id": c.actor_id}, doc, upsert=True, session=self.session)


class MongoDeliveryRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db["deliveries"]
        self.session = session

    async def get(self, delivery_id: str) -> Delivery | None:
        doc = await self.collection.find_one({"_id": delivery_id}, session=self.session)
        return _delivery(doc) if doc else None

    async def get_or_create(self, delivery: Delivery) -> Delivery:
        """The stored delivery with this id; the given one, stored, if there was none."""
        existing = await self.get(delivery.id)
        if existing is not None:
            return existing
        try:
            await self.collection.insert_one(_delivery_doc(delivery), session=self.session)
            return delivery
        except DuplicateKeyError:  # inserted by another instance a moment ago
            existing = await self.get(delivery.id)
            assert existing is not None
            return existing

    async def set_status(self, delivery_id: str, status: DeliveryStatus) -> None:
        await self.collection.update_one(
            {"_id": delivery_id, "status": {"$nin": [DeliveryStatus.SENT.value, DeliveryStatus.FAILED.value]}},
            {"$set": {"status": status.value}},
            session=self.session,
        )

    async def claim(self, delivery_id: str, lease_seconds: float) -> Delivery | None:
        """Lease the delivery to this instance, unless another instance holds a live lease."""
        now = datetime.now(UTC)
        doc = await self.collection.find_one_and_update(
            {
                "_id": delivery_id,
                "$or": [
                    {"status": {"$in": [DeliveryStatus.PENDING.value, DeliveryStatus.WAITING_FOR_CONTACT.value]}},
                    {"status": DeliveryStatus.SENDING.value, "lease_until": {"$lt": now}},
                ],
            },
            {
                "$set": {"status": DeliveryStatus.SENDING.value, "lease_until": now + timedelta(seconds=lease_seconds)},
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        return _delivery(doc) if doc else None

    async def finish(self, delivery: Delivery, status: DeliveryStatus, *, reason: str | None = None) -> bool:
        """Record the outcome of a delivery this instance holds; False if it was already final."""
        result = await self.collection.update_one(
            {"_id": delivery.id, "status": DeliveryStatus.SENDING.value},
            {"$set": {"status": status.value, "reason": reason, "finished_at": datetime.now(UTC)}},
            session=self.session,
        )
        return result.modified_count == 1

    async def waiting_for(self, actor_id: str) -> list[Delivery]:
        query = {"actor_id": actor_id, "status": DeliveryStatus.WAITING_FOR_CONTACT.value}
        return [_delivery(d) async for d in self.collection.find(query, session=self.session)]

    async def for_conference(self, conference_id: str) -> list[Delivery]:
        cursor = self.collection.find({"conference_id": conference_id}, session=self.session)
        return [_delivery(d) async for d in cursor.sort("_id", ASCENDING)]


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db["deliveries"].create_index([("actor_id", ASCENDING), ("status", ASCENDING)])
    await db["deliveries"].create_index("conference_id")


def _delivery_doc(d: Delivery) -> Document:
    return {
        "_id": d.id,
        "kind": d.kind,
        "invitation_id": d.invitation_id,
        "conference_id": d.conference_id,
        "actor_id": d.actor_id,
        "conference": d.conference.model_dump(mode="json"),
        "status": d.status.value,
        "message_id": d.message_id,
        "reason": d.reason,
        "lease_until": d.lease_until,
        "attempts": 0,
    }


def _delivery(doc: Document) -> Delivery:
    return Delivery(
        id=doc["_id"],
        kind=doc["kind"],
        invitation_id=doc["invitation_id"],
        conference_id=doc["conference_id"],
        actor_id=doc["actor_id"],
        conference=ConferenceDetails.model_validate(doc["conference"]),
        status=DeliveryStatus(doc["status"]),
        message_id=doc.get("message_id"),
        reason=doc.get("reason"),
        lease_until=doc.get("lease_until"),
    )
