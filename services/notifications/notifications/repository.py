"""Storage of the notifications service: what the service layer needs (a protocol per repository)
and its MongoDB implementation.

One collection each: ``contacts``, ``conferences`` and ``deliveries``, a document per object with
its fields by name and its id as ``_id`` (``DocumentMapper`` derives the mapping from the domain
dataclass). A contact's ``_id`` is the actor's id, a conference's the conference's. A delivery
document also holds what only storage needs:
``claim`` (the token of the lease holding it), ``attempts`` (claims so far), ``finish`` (which
update recorded its outcome), ``finished_at``, ``handed`` (the token of the claim that last took
it to the SMTP server: from then on it may have been sent) and ``cancelled`` (its conference was
cancelled: no claim may take it to the SMTP server any more). Conference times are stored as dates; documents
written before the mapping was derived hold them as ISO text, and both read back the same.
``test_mail_quota`` counts the test mails of a conference per clock hour (one document each).
``outcome_log`` holds outcomes the recorder logged and has not folded into ``deliveries`` yet
(``recording``): a document per write of the recorder, gone once folded.

A repository made with a session works in it (a transaction, or a session for reading); without
one, each call is its own write (``unit_of_work.Repositories``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from pydantic import TypeAdapter
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from quartier_shared.embedded_db import chunked
from quartier_shared.events import ConferenceDetails
from quartier_shared.mongo import Document, DocumentMapper
from quartier_shared.pagination import FIRST_PAGE, PageRequest

from . import rate_limit
from .domain import (
    CANCELLABLE,
    INVITATION,
    Contact,
    Delivery,
    DeliveryStatus,
    HandOver,
    KnownConference,
    Lease,
    Outcome,
    OutcomeLogEntry,
)

CONTACTS, DELIVERIES, CONFERENCES, TEST_MAIL_QUOTA = "contacts", "deliveries", "conferences", "test_mail_quota"
OUTCOME_LOG = "outcome_log"
_contacts = DocumentMapper(Contact)
_conferences = DocumentMapper(KnownConference)
QUOTA_KEPT_SECONDS = 2 * 3600  # after the start of its window
_deliveries = DocumentMapper(Delivery)
_outcome_log = DocumentMapper(OutcomeLogEntry)
_details: TypeAdapter[ConferenceDetails] = TypeAdapter(ConferenceDetails)
DUPLICATE_KEY = 11000
T = TypeVar("T")


class ContactRepository(Protocol):
    async def get(self, actor_id: str) -> Contact | None: ...
    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Contact]: ...
    async def save(self, contact: Contact) -> None: ...


class ConferenceRepository(Protocol):
    async def get(self, conference_id: str) -> KnownConference | None: ...
    async def save(self, conference: KnownConference) -> None: ...


class QuotaRepository(Protocol):
    async def take(self, conference_id: str, window: datetime) -> int:
        """Count one more test mail of the conference in the window starting at ``window``;
        returns how many that makes (atomically, over every instance)."""
        ...


class OutcomeLogRepository(Protocol):
    """The outcomes logged and not folded yet (``recording``)."""

    async def add(self, entry: OutcomeLogEntry) -> None:
        """One insert: durable once this returns, and no transaction needed."""
        ...

    async def of_owner(self, owner: str, limit: int) -> list[OutcomeLogEntry]:
        """Those ``owner`` logged, oldest first."""
        ...

    async def oldest(self, limit: int, before: datetime | None = None) -> list[OutcomeLogEntry]:
        """Every instance's (``before``: logged before then), oldest first."""
        ...

    async def remove(self, ids: Sequence[str]) -> None: ...


class DeliveryRepository(Protocol):
    """Deliveries and their leases. Each write takes only what its rules allow: a delivery stored
    before is left as it is, a live lease or a final delivery is never claimed, and only the claim
    holding a delivery may record its outcome or give it back."""

    async def add_claimed(self, deliveries: Sequence[Delivery], lease: Lease) -> list[Delivery]:
        """Store new deliveries already leased to ``lease`` and handed over to it (see
        ``hand_over``), one write each; returns the ones stored here (an id stored before, by a
        redelivery or another instance, is left as it is)."""
        ...

    async def add_waiting(self, deliveries: Sequence[Delivery]) -> None:
        """Store new deliveries whose contact has not arrived yet (ones stored before stay as they are)."""
        ...

    async def claim(self, ids: Sequence[str], lease: Lease, now: datetime) -> list[Delivery]:
        """Lease these deliveries to ``lease``, except final ones and ones another lease still
        holds at ``now``; returns the ones now held."""
        ...

    async def release(self, ids: Sequence[str], token: str) -> None:
        """Give back, unsent, deliveries the claim ``token`` still holds, to be claimed again at once."""
        ...

    async def finish(self, outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        """Record the outcomes of deliveries the claim ``token`` still holds; returns their ids (a
        lease that ran out may have passed a delivery to another claim, which records it). A
        ``DEFERRED`` outcome gives its delivery back, not handed over (the server refused it), with
        its reason, ``retry_at`` as ``next_attempt_at`` and the delivery's counts of deferrals."""
        ...

    async def renew(self, delivery_id: str, token: str, until: datetime) -> bool:
        """Hold the delivery until ``until`` if the claim ``token`` still holds it; returns whether it does."""
        ...

    async def claim_due(self, now: datetime, lease: Lease, limit: int) -> list[Delivery]:
        """Lease to ``lease`` up to ``limit`` deferred deliveries due at ``now``, and ones deferred
        before whose lease ran out (their claim died: no event brings them back); returns the
        ones now held."""
        ...

    async def hand_over(self, ids: Sequence[str], token: str) -> HandOver:
        """At the moment of sending: of the deliveries the claim ``token`` holds, mark the ones not
        cancelled as handed to the SMTP server and return them as stored now (the latest details
        an update left), with the ids of the held ones cancelled before any claim handed them over
        (see ``HandOver``). Atomic per delivery with ``cancel_unsent`` and ``refresh``: each sees a
        delivery handed or not."""
        ...

    async def refresh(self, invitation_ids: Sequence[str], conference: ConferenceDetails) -> None:
        """Give the invitation deliveries of ``invitation_ids`` not handed to the SMTP server yet
        (and not final) these newer details, unless they hold these or newer ones."""
        ...

    async def cancel_unsent(self, invitation_ids: Sequence[str], reason: str, now: datetime) -> None:
        """The invitation, update and reminder deliveries of ``invitation_ids`` not final yet: the
        unclaimed ones end cancelled (with ``reason``), the leased ones are marked so that their
        claim cannot hand them over any more."""
        ...

    async def add_cancelled(self, deliveries: Sequence[Delivery]) -> None:
        """Store new deliveries as cancelled (ones stored before stay as they are)."""
        ...

    async def of_invitations(self, invitation_ids: Iterable[str]) -> list[Delivery]:
        """Every delivery of these invitations, by id."""
        ...

    async def get_many(self, ids: Iterable[str]) -> dict[str, Delivery]: ...

    async def latest_invitations(self, invitation_ids: Iterable[str]) -> dict[str, Delivery]:
        """By invitation id, the invitation delivery (of the invitation or a resend) with the
        latest conference details (highest sequence, then highest resend); absent: none stored."""
        ...

    async def waiting_for(self, actor_id: str) -> list[Delivery]: ...
    async def cancel_unsent_of_actor(self, actor_id: str, reason: str, now: datetime) -> list[Delivery]:
        """Make every delivery of the actor not sent yet (pending, waiting or being sent) failed with
        ``reason``, its claim dropped (a claim sending it meanwhile records nothing); returns them
        as they were."""
        ...

    async def of_actor(self, actor_id: str, limit: int) -> list[tuple[Delivery, datetime | None]]:
        """Up to ``limit`` deliveries of the actor, by id, each with when it finished (None: not yet)."""
        ...

    async def for_conference(self, conference_id: str, page: PageRequest = FIRST_PAGE) -> list[Delivery]:
        """The mails of a conference by id: ``page.fetch`` of them from ``page``."""
        ...


class _MongoRepository(Generic[T]):
    """One collection of documents mapped to ``T``, in ``session``'s transaction if one is given."""

    def __init__(
        self, db: AsyncDatabase[Document], name: str, mapper: DocumentMapper[T], session: AsyncClientSession | None
    ) -> None:
        self.collection = db[name]
        self.mapper = mapper
        self.session = session

    async def get_many(self, ids: Iterable[str]) -> dict[str, T]:
        found: dict[str, T] = {}
        for chunk in chunked(ids):
            docs = await self._documents({"_id": {"$in": chunk}})
            found |= {doc["_id"]: self.mapper.from_document(doc) for doc in docs}
        return found

    async def _find(self, query: Document) -> list[T]:
        return [self.mapper.from_document(doc) for doc in await self._documents(query)]

    async def _documents(self, query: Document) -> list[Document]:
        return await self.collection.find(query, session=self.session).to_list()

    async def _ids(self, query: Document) -> set[str]:
        return {doc["_id"] async for doc in self.collection.find(query, {"_id": 1}, session=self.session)}


class MongoContactRepository(_MongoRepository[Contact]):
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        super().__init__(db, CONTACTS, _contacts, session)

    async def get(self, actor_id: str) -> Contact | None:
        return (await self.get_many([actor_id])).get(actor_id)

    async def save(self, contact: Contact) -> None:
        doc = self.mapper.to_document(contact)
        await self.collection.replace_one({"_id": contact.id}, doc, upsert=True, session=self.session)


class MongoConferenceRepository(_MongoRepository[KnownConference]):
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        super().__init__(db, CONFERENCES, _conferences, session)

    async def get(self, conference_id: str) -> KnownConference | None:
        return (await self.get_many([conference_id])).get(conference_id)

    async def save(self, conference: KnownConference) -> None:
        doc = _conferences.to_document(conference)
        await self.collection.replace_one({"_id": conference.id}, doc, upsert=True, session=self.session)


class MongoQuotaRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db[TEST_MAIL_QUOTA]
        self.session = session

    async def take(self, conference_id: str, window: datetime) -> int:
        # One atomic increment: two coordinators at once cannot both take the last one.
        doc = await self.collection.find_one_and_update(
            {"_id": f"{conference_id}:{window.isoformat()}"},
            {"$inc": {"count": 1}, "$setOnInsert": {"conference_id": conference_id, "window": window}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        assert doc is not None  # upserted
        return int(doc["count"])


class MongoOutcomeLog:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db[OUTCOME_LOG]
        self.session = session

    async def add(self, entry: OutcomeLogEntry) -> None:
        await self.collection.insert_one(_outcome_log.to_document(entry), session=self.session)

    async def of_owner(self, owner: str, limit: int) -> list[OutcomeLogEntry]:
        return await self._read({"owner": owner}, limit)

    async def oldest(self, limit: int, before: datetime | None = None) -> list[OutcomeLogEntry]:
        return await self._read({} if before is None else {"created_at": {"$lt": before}}, limit)

    async def _read(self, query: Document, limit: int) -> list[OutcomeLogEntry]:
        cursor = self.collection.find(query, session=self.session).sort("created_at", ASCENDING).limit(limit)
        return [_outcome_log.from_document(doc) async for doc in cursor]

    async def remove(self, ids: Sequence[str]) -> None:
        await self.collection.delete_many({"_id": {"$in": list(ids)}}, session=self.session)


class MongoDeliveryRepository(_MongoRepository[Delivery]):
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        super().__init__(db, DELIVERIES, _deliveries, session)

    async def add_claimed(self, deliveries: Sequence[Delivery], lease: Lease) -> list[Delivery]:
        leased = [replace(d, status=DeliveryStatus.SENDING, lease_until=lease.until) for d in deliveries]
        inserted = await self._insert_new(
            [self.mapper.to_document(d) | {"claim": lease.token, "handed": lease.token, "attempts": 1} for d in leased]
        )
        return [d for d in leased if d.id in inserted]

    async def add_waiting(self, deliveries: Sequence[Delivery]) -> None:
        waiting = (replace(d, status=DeliveryStatus.WAITING_FOR_CONTACT) for d in deliveries)
        await self._insert_new([self.mapper.to_document(d) | {"attempts": 0} for d in waiting])

    async def _insert_new(self, docs: list[Document]) -> set[str]:
        """Insert what is not there yet; returns the ids inserted. Never in a transaction: there a
        duplicate id would abort everything, and here it only means "stored before"."""
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

    async def claim(self, ids: Sequence[str], lease: Lease, now: datetime) -> list[Delivery]:
        take = {
            "$set": {"status": DeliveryStatus.SENDING.value, "lease_until": lease.until, "claim": lease.token},
            "$inc": {"attempts": 1},
        }
        # Two updates rather than one with $or, for the embedded database (see quartier_shared.embedded_db).
        # A deferred one too, due or not: whoever wants it now (a redelivery, a settle) may try.
        claimable = [DeliveryStatus.PENDING.value, DeliveryStatus.WAITING_FOR_CONTACT.value]
        claimable.append(DeliveryStatus.DEFERRED.value)
        for query in (
            {"_id": {"$in": ids}, "status": {"$in": claimable}},
            {"_id": {"$in": ids}, "status": DeliveryStatus.SENDING.value, "lease_until": {"$lt": now}},
        ):
            await self.collection.update_many(query, take, session=self.session)
        return await self._find({"_id": {"$in": ids}, "claim": lease.token})

    async def release(self, ids: Sequence[str], token: str) -> None:
        await self.collection.update_many(
            _held(ids, token),
            {"$set": {"status": DeliveryStatus.PENDING.value, "lease_until": None, "claim": None}},
            session=self.session,
        )

    async def finish(self, outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        sent = [o.delivery.id for o in outcomes if o.status is DeliveryStatus.SENT]
        deferred = [o for o in outcomes if o.status is DeliveryStatus.DEFERRED]
        failed = [o for o in outcomes if o.status.final and o.status is not DeliveryStatus.SENT]  # or cancelled
        held = await self._finish_sent(sent, token, now) if sent else set()
        if failed:
            held |= await self._finish_failed(failed, token, now)
        if deferred:
            held |= await self._defer(deferred, token)
        return held

    async def _finish_sent(self, ids: list[str], token: str, now: datetime) -> set[str]:
        """The common case: one update_many, and no read when the claim still held every one."""
        this_call = uuid.uuid4().hex  # tells the documents this very update changed
        finished = {"status": DeliveryStatus.SENT.value, "reason": None, "finished_at": now, "finish": this_call}
        result = await self.collection.update_many(_held(ids, token), {"$set": finished}, session=self.session)
        if result.modified_count == len(ids):
            return set(ids)
        return await self._ids({"_id": {"$in": ids}, "finish": this_call})

    async def _finish_failed(self, outcomes: list[Outcome], token: str, now: datetime) -> set[str]:
        """One update each, for each has its own reason (and status: failed or cancelled)."""
        held = await self._ids(_held([o.delivery.id for o in outcomes], token))
        writes = [
            UpdateOne(
                {"_id": o.delivery.id},
                {"$set": {"status": o.status.value, "reason": o.reason, "finished_at": now}},
            )
            for o in outcomes
            if o.delivery.id in held
        ]
        if writes:
            await self.collection.bulk_write(writes, ordered=False, session=self.session)
        return held

    async def _defer(self, outcomes: list[Outcome], token: str) -> set[str]:
        held = await self._ids(_held([o.delivery.id for o in outcomes], token))
        writes = [
            UpdateOne(
                _held([o.delivery.id], token),
                {
                    "$set": {
                        "status": DeliveryStatus.DEFERRED.value,
                        "reason": o.reason,
                        "next_attempt_at": o.retry_at,
                        "deferrals": o.delivery.deferrals,
                        "deferred_since": o.delivery.deferred_since,
                        "paced_until": o.delivery.paced_until,
                        "trigger": asdict(o.delivery.trigger) if o.delivery.trigger else None,
                        # Refused, so not sent: an update may still refresh its details, and a
                        # cancellation stops it (see ``DeferredSending`` on the rare ambiguous case).
                        "handed": None,
                        "claim": None,
                        "lease_until": None,
                    }
                },
            )
            for o in outcomes
            if o.delivery.id in held
        ]
        if writes:
            await self.collection.bulk_write(writes, ordered=False, session=self.session)
        return held

    async def renew(self, delivery_id: str, token: str, until: datetime) -> bool:
        result = await self.collection.update_one(
            _held([delivery_id], token), {"$set": {"lease_until": until}}, session=self.session
        )
        return result.matched_count == 1

    async def claim_due(self, now: datetime, lease: Lease, limit: int) -> list[Delivery]:
        ids: list[str] = []
        # Two queries rather than one with $or, for the embedded database (quartier_shared.embedded_db).
        for query in (
            {"status": DeliveryStatus.DEFERRED.value, "next_attempt_at": {"$lte": now}},
            {"status": DeliveryStatus.SENDING.value, "lease_until": {"$lt": now}, "next_attempt_at": {"$ne": None}},
        ):
            cursor = self.collection.find(query, {"_id": 1}, session=self.session).sort("next_attempt_at", ASCENDING)
            ids += [doc["_id"] async for doc in cursor.limit(limit - len(ids))]
            if len(ids) >= limit:
                break
        # ``claim`` takes each only if it still is claimable: of two instances, one gets it.
        return await self.claim(ids, lease, now) if ids else []

    async def hand_over(self, ids: Sequence[str], token: str) -> HandOver:
        await self.collection.update_many(
            {**_held(ids, token), "cancelled": {"$ne": True}}, {"$set": {"handed": token}}, session=self.session
        )
        docs = await self._documents(_held(ids, token))
        return HandOver(
            send=[self.mapper.from_document(d) for d in docs if d.get("handed")],  # now, or before a cancellation
            cancelled={d["_id"] for d in docs if not d.get("handed")},
        )

    async def refresh(self, invitation_ids: Sequence[str], conference: ConferenceDetails) -> None:
        open_ = [
            DeliveryStatus.PENDING.value,
            DeliveryStatus.WAITING_FOR_CONTACT.value,
            DeliveryStatus.SENDING.value,
            DeliveryStatus.DEFERRED.value,
        ]
        for chunk in chunked(list(invitation_ids)):
            await self.collection.update_many(
                {
                    "invitation_id": {"$in": chunk},
                    "kind": INVITATION,
                    "status": {"$in": open_},
                    "handed": None,  # absent or null: never taken to the SMTP server
                    "conference.sequence": {"$lt": conference.sequence},
                },
                {"$set": {"conference": _details.dump_python(conference)}},
                session=self.session,
            )

    async def cancel_unsent(self, invitation_ids: Sequence[str], reason: str, now: datetime) -> None:
        unclaimed = [DeliveryStatus.PENDING.value, DeliveryStatus.WAITING_FOR_CONTACT.value]
        unclaimed.append(DeliveryStatus.DEFERRED.value)  # given back by its claim: not handed over
        cancelled = {"status": DeliveryStatus.CANCELLED.value, "reason": reason, "finished_at": now, "cancelled": True}
        for chunk in chunked(list(invitation_ids)):
            family = {"invitation_id": {"$in": chunk}, "kind": {"$in": list(CANCELLABLE)}}
            await self.collection.update_many(
                {**family, "status": {"$in": unclaimed}}, {"$set": cancelled}, session=self.session
            )
            # A claim taking a pending one between these two writes is caught by the second.
            await self.collection.update_many(
                {**family, "status": DeliveryStatus.SENDING.value}, {"$set": {"cancelled": True}}, session=self.session
            )

    async def add_cancelled(self, deliveries: Sequence[Delivery]) -> None:
        cancelled = (replace(d, status=DeliveryStatus.CANCELLED) for d in deliveries)
        await self._insert_new([self.mapper.to_document(d) | {"attempts": 0, "cancelled": True} for d in cancelled])

    async def of_invitations(self, invitation_ids: Iterable[str]) -> list[Delivery]:
        found: list[Delivery] = []
        for chunk in chunked(list(invitation_ids)):
            found += await self._find({"invitation_id": {"$in": chunk}})
        return sorted(found, key=lambda d: d.id)

    async def latest_invitations(self, invitation_ids: Iterable[str]) -> dict[str, Delivery]:
        found: list[Delivery] = []
        for chunk in chunked(list(invitation_ids)):
            found += await self._find({"invitation_id": {"$in": chunk}, "kind": INVITATION})
        return latest_per_invitation(found)

    async def waiting_for(self, actor_id: str) -> list[Delivery]:
        return await self._find({"actor_id": actor_id, "status": DeliveryStatus.WAITING_FOR_CONTACT.value})

    async def cancel_unsent_of_actor(self, actor_id: str, reason: str, now: datetime) -> list[Delivery]:
        unsent = [s.value for s in DeliveryStatus if not s.final]
        found = await self._find({"actor_id": actor_id, "status": {"$in": unsent}})
        if found:
            cancel = {"status": DeliveryStatus.FAILED.value, "reason": reason, "finished_at": now}
            await self.collection.update_many(
                {"_id": {"$in": [d.id for d in found]}, "status": {"$in": unsent}},
                {"$set": cancel | {"claim": None, "lease_until": None}},
                session=self.session,
            )
        return found

    async def of_actor(self, actor_id: str, limit: int) -> list[tuple[Delivery, datetime | None]]:
        cursor = self.collection.find({"actor_id": actor_id}, session=self.session).sort("_id", ASCENDING)
        return [(_deliveries.from_document(d), d.get("finished_at")) async for d in cursor.limit(limit)]

    async def for_conference(self, conference_id: str, page: PageRequest = FIRST_PAGE) -> list[Delivery]:
        query = {"conference_id": conference_id, **page.query("_id")}
        cursor = self.collection.find(query, session=self.session).sort(page.sort("_id"))
        return [_deliveries.from_document(d) for d in await page.read(cursor, "_id")]


def latest_per_invitation(deliveries: Iterable[Delivery]) -> dict[str, Delivery]:
    """The rule of ``latest_invitations``, for every implementation of it."""
    latest: dict[str, Delivery] = {}
    for d in sorted(deliveries, key=lambda d: (d.conference.sequence, d.resend)):
        latest[d.invitation_id] = d
    return latest


def _held(ids: Sequence[str], token: str) -> Document:
    """The deliveries among ``ids`` that the claim ``token`` holds now."""
    return {"_id": {"$in": list(ids)}, "claim": token, "status": DeliveryStatus.SENDING.value}


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db[DELIVERIES].create_index([("actor_id", ASCENDING), ("status", ASCENDING)])
    await db[DELIVERIES].create_index([("conference_id", ASCENDING), ("_id", ASCENDING)])  # the list's order
    await db[DELIVERIES].create_index("invitation_id")  # a confirmation looks up its invitation
    await db[DELIVERIES].create_index("conference.ends_at")  # retention: what expired
    await db[DELIVERIES].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])  # what is due
    await db[OUTCOME_LOG].create_index([("owner", ASCENDING), ("created_at", ASCENDING)])
    await db[OUTCOME_LOG].create_index("created_at")
    # A count of test mails matters only in its hour: the server removes it a while after.
    await db[TEST_MAIL_QUOTA].create_index("window", expireAfterSeconds=QUOTA_KEPT_SECONDS)
    await rate_limit.create_indexes(db)
