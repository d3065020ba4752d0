"""Storage of the conferences service: conferences, invitations and the roster copy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from quartier_shared.embedded_db import chunked
from quartier_shared.events import InvitationFailed, InvitationSent, Venue

from .domain import Conference, Invitation, InvitationStatus, RosterEntry

Document = dict[str, Any]


class MongoConferenceRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db["conferences"]
        self.session = session

    async def add(self, conference: Conference) -> None:
        await self.collection.insert_one(_conference_doc(conference), session=self.session)

    async def get(self, conference_id: str) -> Conference | None:
        doc = await self.collection.find_one({"_id": conference_id}, session=self.session)
        return _conference(doc) if doc else None

    async def find(self, district: str | None) -> list[Conference]:
        query: Document = {"district": district} if district else {}
        cursor = self.collection.find(query, session=self.session).sort("starts_at", ASCENDING)
        return [_conference(d) async for d in cursor]

    async def upcoming_in(self, districts: tuple[str, ...], now: datetime) -> list[Conference]:
        query = {"district": {"$in": list(districts)}, "status": "scheduled", "starts_at": {"$gt": now}}
        return [_conference(d) async for d in self.collection.find(query, session=self.session)]


class MongoInvitationRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db["invitations"]
        self.session = session

    async def add_many(self, invitations: list[Invitation]) -> None:
        if invitations:
            await self.collection.insert_many([_invitation_doc(i) for i in invitations], session=self.session)

    async def record_outcomes(self, outcomes: Sequence[InvitationSent | InvitationFailed]) -> None:
        """Sent is final; failed may still become sent (a later attempt got through). Failures are
        written first, so a batch holding both for one invitation ends as sent."""
        now = datetime.now(UTC)
        failed = [
            UpdateOne(
                {"_id": o.invitation_id, "status": {"$ne": InvitationStatus.SENT.value}},
                {"$set": {"status": InvitationStatus.FAILED.value, "reason": o.reason, "updated_at": now}},
            )
            for o in outcomes
            if isinstance(o, InvitationFailed)
        ]
        if failed:
            await self.collection.bulk_write(failed, ordered=True, session=self.session)
        sent = [o.invitation_id for o in outcomes if isinstance(o, InvitationSent)]
        for ids in chunked(sent):  # the common case: update_many, cheaper than one update each
            await self.collection.update_many(
                {"_id": {"$in": ids}, "status": {"$ne": InvitationStatus.SENT.value}},
                {"$set": {"status": InvitationStatus.SENT.value, "reason": None, "updated_at": now}},
                session=self.session,
            )

    async def exists(self, conference_id: str, actor_id: str) -> bool:
        doc = await self.collection.find_one(
            {"_id": Invitation.id_for(conference_id, actor_id)}, {"_id": 1}, session=self.session
        )
        return doc is not None

    async def invited_actor_ids(self, conference_id: str) -> set[str]:
        cursor = self.collection.find({"conference_id": conference_id}, {"actor_id": 1}, session=self.session)
        return {d["actor_id"] async for d in cursor}

    async def for_conference(self, conference_id: str) -> list[Invitation]:
        cursor = self.collection.find({"conference_id": conference_id}, session=self.session).sort("_id", ASCENDING)
        return [_invitation(d) async for d in cursor]


class MongoRosterRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db["roster"]
        self.session = session

    async def get(self, actor_id: str) -> RosterEntry | None:
        doc = await self.collection.find_one({"_id": actor_id}, session=self.session)
        if doc is None:
            return None
        return RosterEntry(
            actor_id=doc["_id"],
            districts=tuple(doc["districts"]),
            active=doc["active"],
            consent_to_notifications=doc["consent_to_notifications"],
            revision=doc["revision"],
        )

    async def save(self, entry: RosterEntry) -> None:
        await self.collection.replace_one(
            {"_id": entry.actor_id},
            {
                "districts": list(entry.districts),
                "active": entry.active,
                "consent_to_notifications": entry.consent_to_notifications,
                "revision": entry.revision,
            },
            upsert=True,
            session=self.session,
        )

    async def invitable_in(self, district: str) -> list[str]:
        query = {"districts": district, "active": True, "consent_to_notifications": True}
        return [d["_id"] async for d in self.collection.find(query, {"_id": 1}, session=self.session)]


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db["conferences"].create_index([("district", ASCENDING), ("starts_at", ASCENDING)])
    # One invitation per conference and actor is the _id's job (derived from both); this index
    # only serves listing a conference's invitations.
    await db["invitations"].create_index("conference_id")
    await db["roster"].create_index(
        [("districts", ASCENDING), ("active", ASCENDING), ("consent_to_notifications", ASCENDING)]
    )


def _conference_doc(c: Conference) -> Document:
    return {
        "_id": c.id,
        "district": c.district,
        "district_name": c.district_name,
        "timezone": c.timezone,
        "title": c.title,
        "starts_at": c.starts_at,
        "ends_at": c.ends_at,
        "venue": c.venue.model_dump(),
        "agenda": list(c.agenda),
        "sequence": c.sequence,
        "status": c.status,
        "created_at": c.created_at,
    }


def _conference(d: Document) -> Conference:
    return Conference(
        id=d["_id"],
        district=d["district"],
        district_name=d["district_name"],
        timezone=d["timezone"],
        title=d["title"],
        starts_at=d["starts_at"],
        ends_at=d["ends_at"],
        venue=Venue.model_validate(d["venue"]),
        agenda=tuple(d["agenda"]),
        sequence=d["sequence"],
        status=d["status"],
        created_at=d["created_at"],
    )


def _invitation_doc(i: Invitation) -> Document:
    return {
        "_id": i.id,
        "conference_id": i.conference_id,
        "actor_id": i.actor_id,
        "status": i.status.value,
        "reason": i.reason,
        "updated_at": i.updated_at,
    }


def _invitation(d: Document) -> Invitation:
    return Invitation(
        id=d["_id"],
        conference_id=d["conference_id"],
        actor_id=d["actor_id"],
        status=InvitationStatus(d["status"]),
        reason=d.get("reason"),
        updated_at=d["updated_at"],
    )
