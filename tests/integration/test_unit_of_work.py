"""The MongoDB unit of work: a change and its events commit together or not at all; a unit of
work for reading sees what is committed and cannot commit."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from quartier_shared.events import ActorDeactivated, EventContext
from quartier_shared.mongo import MongoUnitOfWork
from quartier_shared.outbox import Outbox, pending_events

CONTEXT = EventContext("tests", "uow-test")


async def test_a_change_and_its_event_commit_together_or_not_at_all(mongo_uri: str, database_name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    db = client[database_name]
    outbox = Outbox(db, owner="tests")
    try:
        async with MongoUnitOfWork(client, db, outbox, CONTEXT) as uow:
            await db["things"].insert_one({"_id": "kept"}, session=uow.session)
            uow.record(ActorDeactivated(actor_id="a1", revision=2))
            await uow.commit()
        with pytest.raises(RuntimeError, match="left uncommitted"):
            async with MongoUnitOfWork(client, db, outbox, CONTEXT) as uow:
                await db["things"].insert_one({"_id": "dropped"}, session=uow.session)
                uow.record(ActorDeactivated(actor_id="a2", revision=2))
                raise RuntimeError("left uncommitted")
        assert [d["_id"] async for d in db["things"].find({})] == ["kept"]
        assert await pending_events(db) == 1

        async with MongoUnitOfWork(client, db, outbox, CONTEXT).for_reading() as reader:
            assert await db["things"].find_one({"_id": "kept"}, session=reader.session) is not None
            assert not reader.session.in_transaction
            with pytest.raises(RuntimeError, match="cannot commit"):
                await reader.commit()
    finally:
        await client.drop_database(database_name)
        await client.close()
