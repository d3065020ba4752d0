"""Actor storage: what the service layer needs (``ActorRepository``, ``TeamRepository``) and
their MongoDB implementations.

An actor is stored as one document in ``actors``, its fields by name with its id as ``_id``; a
district's competence team as one document in ``teams`` with the district code as ``_id``
(``DocumentMapper`` derives the mapping from the dataclass).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from quartier_shared.mongo import Document, DocumentMapper
from quartier_shared.pagination import FIRST_PAGE, PageRequest

from .domain import Actor, CompetenceTeam

ACTORS = "actors"
TEAMS = "teams"
_actors = DocumentMapper(Actor)
_teams = DocumentMapper(CompetenceTeam, id_field="district")


class ActorRepository(Protocol):
    async def add(self, actor: Actor) -> None: ...
    async def get(self, actor_id: str) -> Actor | None: ...
    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Actor]: ...
    async def save(self, actor: Actor) -> None: ...
    async def find(
        self,
        district: str | None,
        include_inactive: bool,
        *,
        within: Collection[str] | None = None,
        page: PageRequest = FIRST_PAGE,
    ) -> list[Actor]:
        """The actors of ``district`` (all districts for None) that have a district ``within``
        those given (None: no such limit), oldest first: ``page.fetch`` of them from ``page``."""
        ...


class MongoActorRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[ACTORS]
        self.session = session

    async def add(self, actor: Actor) -> None:
        await self.collection.insert_one(_actors.to_document(actor), session=self.session)

    async def get(self, actor_id: str) -> Actor | None:
        doc = await self.collection.find_one({"_id": actor_id}, session=self.session)
        return _actors.from_document(doc) if doc else None

    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Actor]:
        cursor = self.collection.find({"_id": {"$in": list(actor_ids)}}, session=self.session)
        return {doc["_id"]: _actors.from_document(doc) async for doc in cursor}

    async def save(self, actor: Actor) -> None:
        await self.collection.replace_one({"_id": actor.id}, _actors.to_document(actor), session=self.session)

    async def find(
        self,
        district: str | None,
        include_inactive: bool,
        *,
        within: Collection[str] | None = None,
        page: PageRequest = FIRST_PAGE,
    ) -> list[Actor]:
        query: Document = page.query("created_at")
        if within is not None:
            query["districts"] = {"$in": sorted(within)}
        if district:
            query["districts"] = district  # the caller checked that it lies within
        if not include_inactive:
            query["active"] = True
        cursor = self.collection.find(query, session=self.session).sort(page.sort("created_at"))
        return [_actors.from_document(d) for d in await page.read(cursor, "created_at")]


class TeamRepository(Protocol):
    async def get(self, district: str) -> CompetenceTeam | None: ...
    async def save(self, team: CompetenceTeam) -> None: ...


class MongoTeamRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.collection = db[TEAMS]
        self.session = session

    async def get(self, district: str) -> CompetenceTeam | None:
        doc = await self.collection.find_one({"_id": district}, session=self.session)
        return _teams.from_document(doc) if doc else None

    async def save(self, team: CompetenceTeam) -> None:
        doc = _teams.to_document(team)
        await self.collection.replace_one({"_id": team.district}, doc, upsert=True, session=self.session)


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db[ACTORS].create_index([("districts", ASCENDING), ("active", ASCENDING)])
    await db[ACTORS].create_index([("created_at", ASCENDING), ("_id", ASCENDING)])  # the list's order
