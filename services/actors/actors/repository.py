"""Actor storage in the service's own MongoDB database."""

from __future__ import annotations

from typing import Any, Protocol

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .domain import Actor

Document = dict[str, Any]


class ActorRepository(Protocol):
    async def add(self, actor: Actor) -> None: ...
    async def get(self, actor_id: str) -> Actor | None: ...
    async def save(self, actor: Actor) -> None: ...


class MongoActorRepository:
    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession | None = None) -> None:
        self.collection = db["actors"]
        self.session = session

    async def add(self, actor: Actor) -> None:
        await self.collection.insert_one(to_document(actor), session=self.session)

    async def get(self, actor_id: str) -> Actor | None:
        doc = await self.collection.find_one({"_id": actor_id}, session=self.session)
        return from_document(doc) if doc else None

    async def save(self, actor: Actor) -> None:
        await self.collection.replace_one({"_id": actor.id}, to_document(actor), session=self.session)

    async def find(self, district: str | None, include_inactive: bool) -> list[Actor]:
        query: Document = {}
        if district:
            query["districts"] = district
        if not include_inactive:
            query["active"] = True
        cursor = self.collection.find(query, session=self.session).sort("created_at", ASCENDING)
        return [from_document(d) async for d in cursor]


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    await db["actors"].create_index([("districts", ASCENDING), ("active", ASCENDING)])
    await db["actors"].create_index("created_at")


def to_document(actor: Actor) -> Document:
    return {
        "_id": actor.id,
        "name": actor.name,
        "kind": actor.kind,
        "districts": list(actor.districts),
        "email": actor.email,
        "language": actor.language,
        "consent_to_notifications": actor.consent_to_notifications,
        "active": actor.active,
        "revision": actor.revision,
        "created_at": actor.created_at,
        "updated_at": actor.updated_at,
    }


def from_document(doc: Document) -> Actor:
    return Actor(
        id=doc["_id"],
        name=doc["name"],
        kind=doc["kind"],
        districts=tuple(doc["districts"]),
        email=doc["email"],
        language=doc["language"],
        consent_to_notifications=doc["consent_to_notifications"],
        active=doc["active"],
        revision=doc["revision"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )
