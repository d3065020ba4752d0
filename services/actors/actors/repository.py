"""Actor storage: what the service layer needs (``ActorRepository``, ``TeamRepository``,
``ErasureRepository``, ``AuditLog``) and their MongoDB implementations.

An actor is stored as one document in ``actors``, its fields by name (its consent records
embedded) with its id as ``_id``; a district's competence team as one document in ``teams`` with
the district code as ``_id``; an actor's erasure record as one document in ``erasures`` with the
actor's id as ``_id``; each audit entry as one document in ``audit`` (``DocumentMapper`` derives
the mapping from the dataclass).

Each actor document written now carries ``published_as: 2``: its events went out in version 2
of the actor events (with ``ContactChanged``). A document without it was stored before, and is
published once more in the current form at start-up (``handlers.publish_in_current_form``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from quartier_shared.mongo import Document, DocumentMapper, KeyedDocuments
from quartier_shared.pagination import FIRST_PAGE, PageRequest

from .audit import AuditEntry
from .domain import Actor, CompetenceTeam
from .erasure import Erasure

ACTORS = "actors"
TEAMS = "teams"
ERASURES = "erasures"
AUDIT = "audit"
_actors = DocumentMapper(Actor)
_teams = DocumentMapper(CompetenceTeam, id_field="district")
_erasures = DocumentMapper(Erasure, id_field="actor_id")
_audit = DocumentMapper(AuditEntry)
PUBLISHED_AS = "published_as"
CURRENT_FORM = 2  # the major version of the actor events


class ActorRepository(Protocol):
    async def add(self, actor: Actor) -> None: ...
    async def get(self, actor_id: str) -> Actor | None: ...
    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Actor]: ...
    async def save(self, actor: Actor) -> None:
        """Store the actor, marked as published in the current form."""
        ...

    async def not_published_in_current_form(self) -> list[str]:
        """The ids of the actors stored before version 2 of the actor events."""
        ...

    async def find(
        self,
        district: str | None,
        include_inactive: bool,
        *,
        within: Collection[str] | None = None,
        page: PageRequest = FIRST_PAGE,
        kind: str | None = None,
        text: str | None = None,
    ) -> list[Actor]:
        """The actors of ``district`` (all districts for None) that have a district ``within``
        those given (None: no such limit), of ``kind`` (None: any), whose name or e-mail address
        holds ``text`` (any case; None: all), oldest first: ``page.fetch`` of them from ``page``."""
        ...

    async def emails_taken(self, emails: Collection[str]) -> set[str]:
        """Those of ``emails`` (lower case) that an actor has, active or not, compared in lower case."""
        ...


class MongoActorRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[ACTORS]
        self.session = session

    async def add(self, actor: Actor) -> None:
        await self.collection.insert_one(_document(actor), session=self.session)

    async def get(self, actor_id: str) -> Actor | None:
        doc = await self.collection.find_one({"_id": actor_id}, session=self.session)
        return _actors.from_document(doc) if doc else None

    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Actor]:
        cursor = self.collection.find({"_id": {"$in": list(actor_ids)}}, session=self.session)
        return {doc["_id"]: _actors.from_document(doc) async for doc in cursor}

    async def save(self, actor: Actor) -> None:
        await self.collection.replace_one({"_id": actor.id}, _document(actor), session=self.session)

    async def not_published_in_current_form(self) -> list[str]:
        cursor = self.collection.find({PUBLISHED_AS: {"$ne": CURRENT_FORM}}, {"_id": 1}, session=self.session)
        return [doc["_id"] async for doc in cursor]

    async def find(
        self,
        district: str | None,
        include_inactive: bool,
        *,
        within: Collection[str] | None = None,
        page: PageRequest = FIRST_PAGE,
        kind: str | None = None,
        text: str | None = None,
    ) -> list[Actor]:
        query: Document = page.query("created_at")
        if kind:
            query["kind"] = kind
        if text:  # the literal text, not a pattern; no index serves it, the other filters narrow it first
            pattern = {"$regex": re.escape(text), "$options": "i"}
            query["$or"] = [{"name": pattern}, {"email": pattern}]
        if within is not None:
            query["districts"] = {"$in": sorted(within)}
        if district:
            query["districts"] = district  # the caller checked that it lies within
        if not include_inactive:
            query["active"] = True
        cursor = self.collection.find(query, session=self.session).sort(page.sort("created_at"))
        return [_actors.from_document(d) for d in await page.read(cursor, "created_at")]

    async def emails_taken(self, emails: Collection[str]) -> set[str]:
        # Addresses are stored as given; the file's may differ in case, so both spellings are asked.
        asked = sorted({*emails, *(e.lower() for e in emails)})
        cursor = self.collection.find({"email": {"$in": asked}}, {"email": 1}, session=self.session)
        return {doc["email"].lower() async for doc in cursor} & {e.lower() for e in emails}


def _document(actor: Actor) -> Document:
    return {**_actors.to_document(actor), PUBLISHED_AS: CURRENT_FORM}


class TeamRepository(Protocol):
    async def get(self, district: str) -> CompetenceTeam | None: ...
    async def save(self, team: CompetenceTeam) -> None: ...


class MongoTeamRepository(KeyedDocuments[CompetenceTeam]):
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        super().__init__(db, TEAMS, _teams, session)


class ErasureRepository(Protocol):
    async def get(self, actor_id: str) -> Erasure | None: ...
    async def save(self, erasure: Erasure) -> None: ...


class MongoErasureRepository(KeyedDocuments[Erasure]):
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        super().__init__(db, ERASURES, _erasures, session)


class AuditLog(Protocol):
    async def record(self, entries: Iterable[AuditEntry]) -> None:
        """Store the entries, all with one write."""
        ...

    async def of_actor(self, actor_id: str, page: PageRequest = FIRST_PAGE) -> list[AuditEntry]:
        """The actor's entries, oldest first: ``page.fetch`` of them from ``page``."""
        ...


class MongoAuditLog:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[AUDIT]
        self.session = session

    async def record(self, entries: Iterable[AuditEntry]) -> None:
        docs = [_audit.to_document(entry) for entry in entries]
        if docs:
            await self.collection.insert_many(docs, ordered=False, session=self.session)

    async def of_actor(self, actor_id: str, page: PageRequest = FIRST_PAGE) -> list[AuditEntry]:
        query: Document = {**page.query("at"), "actor_id": actor_id}
        cursor = self.collection.find(query, session=self.session).sort(page.sort("at"))
        return [_audit.from_document(d) for d in await page.read(cursor, "at")]


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db[AUDIT].create_index([("actor_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)])
    await db[AUDIT].create_index("at")  # retention: what expired
    await db[ACTORS].create_index([("districts", ASCENDING), ("active", ASCENDING)])
    await db[ACTORS].create_index([("created_at", ASCENDING), ("_id", ASCENDING)])  # the list's order
    await db[ACTORS].create_index([("email", ASCENDING)])  # the import matches rows by address
