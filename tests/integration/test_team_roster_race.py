"""A team change and a roster change of one of its members at the same moment, on the real
database: each transaction reads what the other is about to change (the team change sees the
member not yet invitable, the roster change sees them not yet a member), so without a common
write both would commit and the member would never be invited to the team meeting (write skew).
``RosterRepository.hold`` is that common write: one of the two fails with an error the consumer
retries (``is_unavailable``), and the retry sees the other's change."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from conferences.domain import RosterEntry
from conferences.repository import create_indexes
from conferences.teams import TeamCopy
from conferences.unit_of_work import MongoConferencesUnitOfWork
from quartier_shared.events import EventContext
from quartier_shared.mongo import is_unavailable
from quartier_shared.outbox import Outbox

CONTEXT = EventContext("conferences", "race-test")


async def race(client: AsyncMongoClient[dict[str, Any]], database: str, *, hold: bool, known: bool) -> list[str]:
    """The two transactions interleaved; which of them committed ("team", "roster")."""
    db = client[database]
    await create_indexes(db)
    outbox = Outbox(db, owner="tests")
    hesitant = RosterEntry("member", ("IV",), active=True, consent_to_notifications=False, revision=1)
    if known:
        async with MongoConferencesUnitOfWork(client, db, outbox, CONTEXT) as uow:
            await uow.roster.save(hesitant)
            await uow.commit()
    committed: list[str] = []
    team_change = MongoConferencesUnitOfWork(client, db, outbox, CONTEXT)
    roster_change = MongoConferencesUnitOfWork(client, db, outbox, CONTEXT)
    async with team_change, roster_change:
        # Both read first: neither sees what the other will write.
        entry = await team_change.roster.get("member")
        assert entry is None or not entry.invitable
        assert await roster_change.teams.get("IV") is None
        await roster_change.roster.save(RosterEntry("member", ("IV",), True, True, 2))
        try:
            await team_change.teams.save(TeamCopy("IV", ("member",), 1))
            if hold:
                await team_change.roster.hold(["member"])
            await team_change.commit()
            committed.append("team")
        except PyMongoError as exc:
            assert is_unavailable(exc), exc  # retried by the consumer, not dead-lettered
        try:
            await roster_change.commit()
            committed.append("roster")
        except PyMongoError as exc:
            assert is_unavailable(exc), exc
    return committed


@pytest.mark.parametrize("known", [True, False], ids=["member-known", "member-not-yet-in-the-roster"])
async def test_holding_the_members_makes_one_of_the_racing_changes_retry(
    mongo_uri: str, database_name: str, known: bool
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        assert await race(client, f"{database_name}_skew", hold=False, known=known) == ["team", "roster"]
        assert len(await race(client, f"{database_name}_held", hold=True, known=known)) == 1
    finally:
        for suffix in ("_skew", "_held"):
            await client.drop_database(database_name + suffix)
        await client.close()
