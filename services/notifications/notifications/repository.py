"""Storage of the notifications service: contacts and deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from quartier_shared.embedded_db import chunked
from quartier_shared.events import ConferenceDetails

from .domain import Contact, Delivery, DeliveryStatus

Document = dict[str, Any]
DUPLICATE_KEY = 11000


class MongoContactRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db["contacts"]
        self.session = session

    async def get(self, actor_id: str) -> Contact | None:
        return (await self.get_many([actor_id])).get(actor_id)

    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Contact]:
        found: dict[str, Contact] = {}
        for ids in chunked(actor_ids):
            cursor = self.collection.find({"_id": {"$in": ids}}, session=self.session)
            found |= {doc["_id"]: _contact(doc) async for doc in cursor}
        return found

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

    async def get_many(self, ids: Iterable[str]) -> dict[str, Delivery]:
        found: dict[str, Delivery] = {}
        for chunk in chunked(ids):
            cursor = self.collection.find({"_id": {"$in": chunk}}, session=self.session)
            found |= {d["_id"]: _delivery(d) async for d in cursor}
        return found

    async def add_waiting(self, deliveries: list[Delivery]) -> None:
        """Store new deliveries whose contact data has not arrived yet."""
        docs = [_delivery_doc(d) | {"status": DeliveryStatus.WAITING_FOR_CONTACT.value} for d in deliveries]
        await self._insert_new(docs)

    async def add_claimed(self, deliveries: list[Delivery], lease_seconds: float, token: str) -> list[Delivery]:
        """Store new deliveries already leased to claim ``token``, one write each. Returns the ones
        stored here: an id another instance stored first stays as that one stored it."""
        lease_until = datetime.now(UTC) + timedelta(seconds=lease_seconds)
        lease = {"status": DeliveryStatus.SENDING.value, "lease_until": lease_until, "claim": token, "attempts": 1}
        inserted = await self._insert_new([_delivery_doc(d) | lease for d in deliveries])
        return [
            replace(d, status=DeliveryStatus.SENDING, lease_until=lease_until) for d in deliveries if d.id in inserted
        ]

    async def _insert_new(self, docs: list[Document]) -> set[str]:
        """Insert what is not there yet; returns the ids inserted."""
        ids = {doc["_id"] for doc in docs}
        if not docs:
            return ids
        try:
            await self.collection.insert_many(docs, ordered=False, session=self.session)
        except BulkWriteError as exc:
            duplicates = [e for e in exc.details["writeErrors"] if e.get("code") == DUPLICATE_KEY]
            if len(duplicates) != len(exc.details["writeErrors"]):
                raise
            ids -= {docs[e["index"]]["_id"] for e in duplicates}
        return ids

    async def mark_waiting(self, ids: list[str]) -> None:
        await self.collection.update_many(
            {
                "_id": {"$in": ids},
                "status": {"$in": [DeliveryStatus.PENDING.value, DeliveryStatus.WAITING_FOR_CONTACT.value]},
            },
            {"$set": {"status": DeliveryStatus.WAITING_FOR_CONTACT.value}},
            session=self.session,
        )

    async def claim(self, ids: list[str], lease_seconds: float, token: str) -> list[Delivery]:
        """Lease these deliveries to one claim ``token``, except those another claim holds with a
        live lease or that are final. Returns the ones now held."""
        now = datetime.now(UTC)
        lease = {
            "$set": {
                "status": DeliveryStatus.SENDING.value,
                "lease_until": now + timedelta(seconds=lease_seconds),
                "claim": token,
            },
            "$inc": {"attempts": 1},
        }
        # Two updates rather than one with $or, for the embedded database (see quartier_shared.embedded_db).
        claimable = [DeliveryStatus.PENDING.value, DeliveryStatus.WAITING_FOR_CONTACT.value]
        await self.collection.update_many(
            {"_id": {"$in": ids}, "status": {"$in": claimable}}, lease, session=self.session
        )
        await self.collection.update_many(
            {"_id": {"$in": ids}, "status": DeliveryStatus.SENDING.value, "lease_until": {"$lt": now}},
            lease,
            session=self.session,
        )
        cursor = self.collection.find({"_id": {"$in": ids}, "claim": token}, session=self.session)
        return [_delivery(d) async for d in cursor]

    async def release(self, ids: list[str], token: str) -> None:
        """Give deliveries this claim still holds back, unsent, to be claimed again at once."""
        await self.collection.update_many(
            {"_id": {"$in": ids}, "claim": token, "status": DeliveryStatus.SENDING.value},
            {"$set": {"status": DeliveryStatus.PENDING.value, "lease_until": None, "claim": None}},
            session=self.session,
        )

    async def finish(self, outcomes: Sequence[tuple[Delivery, DeliveryStatus, str | None]], token: str) -> set[str]:
        """Record outcomes of deliveries still held by ``token``; returns their ids (a lease that ran
        out may have passed a delivery to another instance, which then records it)."""
        now = datetime.now(UTC)
        held: set[str] = set()
        sending = DeliveryStatus.SENDING.value
        sent = [d.id for d, status, _ in outcomes if status is DeliveryStatus.SENT]
        if sent:  # the common case: one update_many, and no read when every one was still held
            this_call = uuid.uuid4().hex  # tells the documents this very update changed
            result = await self.collection.update_many(
                {"_id": {"$in": sent}, "claim": token, "status": sending},
                {
                    "$set": {
                        "status": DeliveryStatus.SENT.value,
                        "reason": None,
                        "finished_at": now,
                        "finish": this_call,
                    }
                },
                session=self.session,
            )
            if result.modified_count == len(sent):
                held.update(sent)
            else:
                query = {"_id": {"$in": sent}, "finish": this_call}
                held.update([doc["_id"] async for doc in self.collection.find(query, {"_id": 1}, session=self.session)])
        failed = [(d, reason) for d, status, reason in outcomes if status is DeliveryStatus.FAILED]
        if failed:
            query = {"_id": {"$in": [d.id for d, _ in failed]}, "claim": token, "status": sending}
            still = {doc["_id"] async for doc in self.collection.find(query, {"_id": 1}, session=self.session)}
            writes = [
                UpdateOne(
                    {"_id": d.id}, {"$set": {"status": DeliveryStatus.FAILED.value, "reason": r, "finished_at": now}}
                )
                for d, r in failed
                if d.id in still
            ]
            if writes:
                await self.collection.bulk_write(writes, ordered=False, session=self.session)
            held |= still
        return held

    async def waiting_for(self, actor_id: str) -> list[Delivery]:
        query = {"actor_id": actor_id, "status": DeliveryStatus.WAITING_FOR_CONTACT.value}
        return [_delivery(d) async for d in self.collection.find(query, session=self.session)]

    async def for_conference(self, conference_id: str) -> list[Delivery]:
        cursor = self.collection.find({"conference_id": conference_id}, session=self.session)
        return [_delivery(d) async for d in cursor.sort("_id", ASCENDING)]


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db["deliveries"].create_index([("actor_id", ASCENDING), ("status", ASCENDING)])
    await db["deliveries"].create_index("conference_id")


def _contact(doc: Document) -> Contact:
    return Contact(
        actor_id=doc["_id"],
        name=doc["name"],
        email=doc["email"],
        language=doc["language"],
        consent_to_notifications=doc["consent_to_notifications"],
        active=doc["active"],
        revision=doc["revision"],
    )


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
