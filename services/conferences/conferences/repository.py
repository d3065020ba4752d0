"""Storage of the conferences service: what the service layer needs (a protocol per repository)
and its MongoDB implementation.

One collection each: ``conferences``, ``invitations``, ``roster``, ``teams`` and ``reminders``, a
document per object with its fields by name and its id as ``_id`` (``DocumentMapper`` derives the
mapping from the domain dataclass). A roster entry's ``_id`` is the actor's id, a team copy's the
district code. ``nudges`` holds, per conference, when its coordinator last nudged (the window of
``POST /conferences/{id}/reminders``).

Serialising fan-outs with changes: every transaction that issues invitations ``touch``es their
conference's document, as a change or cancellation writes it. Two such transactions that overlap
conflict in MongoDB (WriteConflict, a TransientTransactionError): one is retried, and then reads
the conference as the other left it, so no invitation is issued to a conference whose cancellation
has committed, nor with details older than its last change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from quartier_shared.embedded_db import chunked
from quartier_shared.events import InvitationFailed, InvitationSent
from quartier_shared.mongo import Document, DocumentMapper, KeyedDocuments
from quartier_shared.pagination import FIRST_PAGE, PageRequest

from .domain import Conference, Invitation, InvitationStatus, Reminder, RosterEntry
from .teams import TeamCopy

CONFERENCES, INVITATIONS, ROSTER, REMINDERS, NUDGES = "conferences", "invitations", "roster", "reminders", "nudges"
TEAMS = "teams"
_conferences = DocumentMapper(Conference)
_invitations = DocumentMapper(Invitation)
_roster = DocumentMapper(RosterEntry)
_reminders = DocumentMapper(Reminder)
_teams = DocumentMapper(TeamCopy, id_field="district")


class ConferenceRepository(Protocol):
    async def add(self, conference: Conference) -> None: ...
    async def get(self, conference_id: str) -> Conference | None: ...
    async def save(self, conference: Conference) -> None:
        """Replace the stored conference (one that exists) with this state of it."""
        ...

    async def find(
        self, district: str | None, *, within: Collection[str] | None = None, page: PageRequest = FIRST_PAGE
    ) -> list[Conference]:
        """The conferences of ``district`` (all districts for None) and ``within`` those given
        (None: no such limit), earliest first: ``page.fetch`` of them from ``page``."""
        ...

    async def upcoming_in(self, districts: Iterable[str], now: datetime) -> list[Conference]:
        """The conferences of these districts that are still to come, earliest first."""
        ...

    async def touch(self, conference_id: str) -> None:
        """Write the conference's document without changing what it holds, so this transaction
        conflicts with any other that writes it (see the module's docstring)."""
        ...


class InvitationRepository(Protocol):
    async def add_many(self, invitations: Sequence[Invitation]) -> None: ...
    async def get(self, invitation_id: str) -> Invitation | None: ...
    async def save(self, invitation: Invitation) -> None:
        """Replace the stored invitation (one that exists) with this state of it."""
        ...

    async def save_answer(self, invitation: Invitation) -> None:
        """Store ``invitation.answer`` (replacing the earlier one); nothing else of it changes."""
        ...

    async def exists(self, conference_id: str, actor_id: str) -> bool: ...
    async def invited_actor_ids(self, conference_id: str) -> set[str]: ...
    async def for_conference(self, conference_id: str) -> list[Invitation]: ...
    async def of_actor(self, actor_id: str, limit: int | None = None) -> list[Invitation]:
        """The actor's invitations by id (up to ``limit``; None: all)."""
        ...

    async def record_outcomes(self, outcomes: Sequence[InvitationSent | InvitationFailed]) -> None:
        """Apply each outcome as ``Invitation.with_outcome`` does; unknown invitations are skipped."""
        ...

    async def told_before(self, conference_id: str, sequence: int, limit: int) -> list[Invitation]:
        """Up to ``limit`` invitations of the conference last told of a sequence below ``sequence``,
        by id."""
        ...

    async def mark_told(self, invitations: Sequence[Invitation]) -> None:
        """Store each invitation's ``sequence``; nothing else of it changes."""
        ...

    async def sent_after(self, conference_id: str, after: str | None, limit: int) -> list[Invitation]:
        """Up to ``limit`` sent invitations of the conference with an id above ``after``, by id."""
        ...


class ReminderRepository(Protocol):
    async def replace_planned(self, conference_id: str, reminders: Sequence[Reminder]) -> None:
        """The conference's planned reminders (not its nudges) become ``reminders``."""
        ...

    async def remove_all(self, conference_id: str) -> None: ...
    async def add(self, reminder: Reminder) -> None: ...
    async def claim_due(self, now: datetime, owner: str, until: datetime) -> Reminder | None:
        """One reminder due at ``now`` whose lease has run out, leased to ``owner`` ``until``."""
        ...

    async def advance(self, reminder: Reminder, after: str, until: datetime) -> bool:
        """Note ``after`` as reached and extend the lease; False when ``reminder.owner`` lost it."""
        ...

    async def remove(self, reminder: Reminder) -> None:
        """Delete it, unless it was planned anew meanwhile (a change of time: another due time)."""
        ...

    async def for_conference(self, conference_id: str) -> list[Reminder]: ...

    async def last_nudge(self, conference_id: str) -> datetime | None: ...
    async def set_last_nudge(self, conference_id: str, at: datetime) -> None: ...


class RosterRepository(Protocol):
    async def get(self, actor_id: str) -> RosterEntry | None: ...
    async def save(self, entry: RosterEntry) -> None: ...
    async def invitable_in(self, district: str) -> list[str]:
        """The ids of the invitable actors of ``district``."""
        ...

    async def without_consent(self, actor_ids: Collection[str]) -> set[str]:
        """Those of ``actor_ids`` whose actor no longer consents to mails (a known entry, not a
        placeholder of ``hold``): they unsubscribed, or their consent was withdrawn."""
        ...

    async def hold(self, actor_ids: Collection[str]) -> None:
        """Write the entries of ``actor_ids`` in this transaction without changing what they say
        (one not known yet gets a placeholder: revision 0, never invitable), so that a concurrent
        change of any of them conflicts with it and one of the two is retried. A team change holds
        its members: a roster change that makes one of them invitable at the same moment cannot
        also miss that they are a member (write skew), so neither misses the invitation."""
        ...


class TeamRepository(Protocol):
    async def get(self, district: str) -> TeamCopy | None: ...
    async def get_many(self, districts: Iterable[str]) -> list[TeamCopy]:
        """The copies of those of ``districts`` that have one."""
        ...

    async def save(self, team: TeamCopy) -> None: ...


class MongoConferenceRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[CONFERENCES]
        self.session = session

    async def add(self, conference: Conference) -> None:
        await self.collection.insert_one(_conferences.to_document(conference), session=self.session)

    async def get(self, conference_id: str) -> Conference | None:
        doc = await self.collection.find_one({"_id": conference_id}, session=self.session)
        return _conferences.from_document(doc) if doc else None

    async def save(self, conference: Conference) -> None:
        doc = _conferences.to_document(conference)
        await self.collection.replace_one({"_id": conference.id}, doc, session=self.session)

    async def find(
        self, district: str | None, *, within: Collection[str] | None = None, page: PageRequest = FIRST_PAGE
    ) -> list[Conference]:
        query: Document = page.query("starts_at")
        if within is not None:
            query["district"] = {"$in": sorted(within)}
        if district:
            query["district"] = district  # the caller checked that it lies within
        cursor = self.collection.find(query, session=self.session).sort(page.sort("starts_at"))
        return [_conferences.from_document(d) for d in await page.read(cursor, "starts_at")]

    async def upcoming_in(self, districts: Iterable[str], now: datetime) -> list[Conference]:
        # The query form of Conference.is_upcoming.
        upcoming = {"status": "scheduled", "starts_at": {"$gt": now}}
        return await self._list({"district": {"$in": list(districts)}, **upcoming})

    async def touch(self, conference_id: str) -> None:
        # A counter no domain object reads (DocumentMapper ignores it); a write all the same.
        await self.collection.update_one({"_id": conference_id}, {"$inc": {"writes": 1}}, session=self.session)

    async def _list(self, query: Document) -> list[Conference]:
        cursor = self.collection.find(query, session=self.session).sort("starts_at", ASCENDING)
        return [_conferences.from_document(d) async for d in cursor]


class MongoInvitationRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[INVITATIONS]
        self.session = session

    async def add_many(self, invitations: Sequence[Invitation]) -> None:
        if invitations:
            docs = [_invitations.to_document(i) for i in invitations]
            await self.collection.insert_many(docs, session=self.session)

    async def get(self, invitation_id: str) -> Invitation | None:
        doc = await self.collection.find_one({"_id": invitation_id}, session=self.session)
        return _invitations.from_document(doc) if doc else None

    async def save(self, invitation: Invitation) -> None:
        doc = _invitations.to_document(invitation)
        await self.collection.replace_one({"_id": invitation.id}, doc, session=self.session)

    async def save_answer(self, invitation: Invitation) -> None:
        # Only the answer: a delivery outcome recorded meanwhile keeps its status.
        answer = _invitations.to_document(invitation)["answer"]
        await self.collection.update_one({"_id": invitation.id}, {"$set": {"answer": answer}}, session=self.session)

    async def exists(self, conference_id: str, actor_id: str) -> bool:
        query = {"_id": Invitation.id_for(conference_id, actor_id)}
        return await self.collection.find_one(query, {"_id": 1}, session=self.session) is not None

    async def invited_actor_ids(self, conference_id: str) -> set[str]:
        cursor = self.collection.find({"conference_id": conference_id}, {"actor_id": 1}, session=self.session)
        return {d["actor_id"] async for d in cursor}

    async def for_conference(self, conference_id: str) -> list[Invitation]:
        cursor = self.collection.find({"conference_id": conference_id}, session=self.session).sort("_id", ASCENDING)
        return [_invitations.from_document(d) async for d in cursor]

    async def of_actor(self, actor_id: str, limit: int | None = None) -> list[Invitation]:
        cursor = self.collection.find({"actor_id": actor_id}, session=self.session).sort("_id", ASCENDING)
        return [_invitations.from_document(d) async for d in cursor.limit(limit or 0)]

    async def record_outcomes(self, outcomes: Sequence[InvitationSent | InvitationFailed]) -> None:
        """The query form of ``Invitation.with_outcome``, a few writes per batch instead of a read
        and a write per invitation: only an invitation of the outcome's attempt (``resend``) that is
        not yet sent changes. Failures are written first, so a batch holding both for one attempt
        ends as sent."""
        now = datetime.now(UTC)
        not_sent = {"$ne": InvitationStatus.SENT.value}
        failed = [
            UpdateOne(
                {"_id": o.invitation_id, "status": not_sent, **_attempt(o.resend)},
                {"$set": {"status": InvitationStatus.FAILED.value, "reason": o.reason, "updated_at": now}},
            )
            for o in outcomes
            if isinstance(o, InvitationFailed)
        ]
        if failed:
            await self.collection.bulk_write(failed, ordered=True, session=self.session)
        sent: dict[int, list[str]] = defaultdict(list)
        for o in outcomes:
            if isinstance(o, InvitationSent):
                sent[o.resend].append(o.invitation_id)
        for resend, invitation_ids in sent.items():
            for ids in chunked(invitation_ids):  # the common case: update_many, cheaper than one update each
                await self.collection.update_many(
                    {"_id": {"$in": ids}, "status": not_sent, **_attempt(resend)},
                    {"$set": {"status": InvitationStatus.SENT.value, "reason": None, "updated_at": now}},
                    session=self.session,
                )

    async def told_before(self, conference_id: str, sequence: int, limit: int) -> list[Invitation]:
        query = {"conference_id": conference_id, "sequence": {"$lt": sequence}}
        cursor = self.collection.find(query, session=self.session).sort("_id", ASCENDING).limit(limit)
        return [_invitations.from_document(d) async for d in cursor]

    async def mark_told(self, invitations: Sequence[Invitation]) -> None:
        by_sequence: dict[int, list[str]] = defaultdict(list)
        for invitation in invitations:
            by_sequence[invitation.sequence].append(invitation.id)
        for sequence, invitation_ids in by_sequence.items():
            for ids in chunked(invitation_ids):
                await self.collection.update_many(
                    {"_id": {"$in": ids}}, {"$set": {"sequence": sequence}}, session=self.session
                )

    async def sent_after(self, conference_id: str, after: str | None, limit: int) -> list[Invitation]:
        query: Document = {"conference_id": conference_id, "status": InvitationStatus.SENT.value}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self.collection.find(query, session=self.session).sort("_id", ASCENDING).limit(limit)
        return [_invitations.from_document(d) async for d in cursor]


def _attempt(resend: int) -> Document:
    """Matches the invitations whose latest attempt is ``resend``; documents stored before attempts
    were counted have no ``resend`` and are at the first."""
    return {"resend": resend} if resend else {"resend": {"$in": [0, None]}}


class MongoRosterRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[ROSTER]
        self.session = session

    async def get(self, actor_id: str) -> RosterEntry | None:
        doc = await self.collection.find_one({"_id": actor_id}, session=self.session)
        return _roster.from_document(doc) if doc else None

    async def save(self, entry: RosterEntry) -> None:
        doc = _roster.to_document(entry)
        await self.collection.replace_one({"_id": entry.id}, doc, upsert=True, session=self.session)

    async def invitable_in(self, district: str) -> list[str]:
        # The query form of RosterEntry.invitable.
        query = {"districts": district, "active": True, "consent_to_notifications": True}
        return [d["_id"] async for d in self.collection.find(query, {"_id": 1}, session=self.session)]

    async def without_consent(self, actor_ids: Collection[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunked(actor_ids):  # a conference's invitees can be thousands (see embedded_db)
            query = {"_id": {"$in": chunk}, "consent_to_notifications": False, "revision": {"$gt": 0}}
            found |= {d["_id"] async for d in self.collection.find(query, {"_id": 1}, session=self.session)}
        return found

    async def hold(self, actor_ids: Collection[str]) -> None:
        placeholder = _roster.to_document(RosterEntry("", (), active=False, consent_to_notifications=False, revision=0))
        del placeholder["_id"]
        writes = [
            UpdateOne({"_id": actor_id}, {"$inc": {"holds": 1}, "$setOnInsert": placeholder}, upsert=True)
            for actor_id in sorted(actor_ids)
        ]
        if writes:
            await self.collection.bulk_write(writes, ordered=True, session=self.session)


class MongoTeamRepository(KeyedDocuments[TeamCopy]):
    """Read and written by ``_id`` (the district) only: the primary key is the index it needs."""

    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        super().__init__(db, TEAMS, _teams, session)

    async def get_many(self, districts: Iterable[str]) -> list[TeamCopy]:
        cursor = self.collection.find({"_id": {"$in": sorted(set(districts))}}, session=self.session)
        return [_teams.from_document(d) async for d in cursor]


class MongoReminderRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[REMINDERS]
        self.nudges = db[NUDGES]
        self.session = session

    async def replace_planned(self, conference_id: str, reminders: Sequence[Reminder]) -> None:
        planned = [r for r in await self.for_conference(conference_id) if not r.is_nudge]
        if planned:
            ids = [r.id for r in planned]
            await self.collection.delete_many({"_id": {"$in": ids}}, session=self.session)
        if reminders:
            docs = [_reminders.to_document(r) for r in reminders]
            await self.collection.insert_many(docs, session=self.session)

    async def remove_all(self, conference_id: str) -> None:
        await self.collection.delete_many({"conference_id": conference_id}, session=self.session)

    async def add(self, reminder: Reminder) -> None:
        await self.collection.insert_one(_reminders.to_document(reminder), session=self.session)

    async def claim_due(self, now: datetime, owner: str, until: datetime) -> Reminder | None:
        # lease_until is never missing (EPOCH until first claimed), so one range query finds them.
        doc = await self.collection.find_one_and_update(
            {"due_at": {"$lte": now}, "lease_until": {"$lte": now}},
            {"$set": {"owner": owner, "lease_until": until}},
            sort=[("due_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        return _reminders.from_document(doc) if doc else None

    async def advance(self, reminder: Reminder, after: str, until: datetime) -> bool:
        result = await self.collection.update_one(
            {"_id": reminder.id, "owner": reminder.owner},
            {"$set": {"after": after, "lease_until": until}},
            session=self.session,
        )
        return result.matched_count == 1

    async def remove(self, reminder: Reminder) -> None:
        await self.collection.delete_one({"_id": reminder.id, "due_at": reminder.due_at}, session=self.session)

    async def for_conference(self, conference_id: str) -> list[Reminder]:
        cursor = self.collection.find({"conference_id": conference_id}, session=self.session).sort("due_at")
        return [_reminders.from_document(d) async for d in cursor]

    async def last_nudge(self, conference_id: str) -> datetime | None:
        doc = await self.nudges.find_one({"_id": conference_id}, session=self.session)
        return doc["at"] if doc else None

    async def set_last_nudge(self, conference_id: str, at: datetime) -> None:
        await self.nudges.replace_one({"_id": conference_id}, {"at": at}, upsert=True, session=self.session)


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db[CONFERENCES].create_index([("district", ASCENDING), ("starts_at", ASCENDING)])
    await db[CONFERENCES].create_index([("starts_at", ASCENDING), ("_id", ASCENDING)])  # the list's order
    # One invitation per conference and actor is the _id's job (derived from both). Listing a
    # conference's invitations is served by the prefix of the compound indexes below; every index
    # is written with each invitation of a fan-out, so there is no index on conference_id alone.
    await db[INVITATIONS].create_index([("actor_id", ASCENDING), ("_id", ASCENDING)])  # an actor's erasure, export
    await db[INVITATIONS].create_index([("conference_id", ASCENDING), ("sequence", ASCENDING), ("_id", ASCENDING)])
    await db[INVITATIONS].create_index([("conference_id", ASCENDING), ("status", ASCENDING), ("_id", ASCENDING)])
    # Invitations stored before they recorded the sequence they were told of were told of the first
    # (a query for "below n" does not match a missing field, so they would never be told a change).
    await db[INVITATIONS].update_many({"sequence": {"$exists": False}}, {"$set": {"sequence": 0}})
    await db[REMINDERS].create_index([("due_at", ASCENDING), ("lease_until", ASCENDING)])
    await db[REMINDERS].create_index("conference_id")
    await db[ROSTER].create_index(
        [("districts", ASCENDING), ("active", ASCENDING), ("consent_to_notifications", ASCENDING)]
    )
