"""Retention in the conferences service: answers' free text and delivery replies of conferences
that ended more than ``RETENTION_MONTHS`` ago (``quartier_shared.retention``).

What goes: each invitation's deputy name and comment (the answer itself, the number of people,
children and needs stay, so a conference's figures never change) and the SMTP server's reply
that a failed delivery reported (``reason``). Each expired conference is then marked
(``free_text_removed_at``), so the daily run looks only at conferences that ended since.
The invitations are stripped before their conference is marked: a run that stops in between is
finished by the next.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from quartier_shared.embedded_db import chunked
from quartier_shared.retention import RetentionJob, months_before

from .repository import CONFERENCES, INVITATIONS

REMOVED_AT = "free_text_removed_at"
BATCH = 200  # conferences per round


def retention_job(db: AsyncDatabase[dict[str, Any]], months: int) -> RetentionJob:
    async def apply(now: datetime) -> dict[str, int]:
        cutoff = months_before(now, months)
        conferences = stripped = 0
        while ids := await _expired(db, cutoff):
            for chunk in chunked(ids):
                stripped += await _strip(db, chunk)
            await db[CONFERENCES].update_many({"_id": {"$in": ids}}, {"$set": {REMOVED_AT: now}})
            conferences += len(ids)
        return {"conferences": conferences, "free_texts": stripped}

    return RetentionJob("conferences-free-text", apply)


async def _expired(db: AsyncDatabase[dict[str, Any]], cutoff: datetime) -> list[str]:
    query = {"ends_at": {"$lt": cutoff}, REMOVED_AT: {"$exists": False}}
    return [doc["_id"] async for doc in db[CONFERENCES].find(query, {"_id": 1}).limit(BATCH)]


async def _strip(db: AsyncDatabase[dict[str, Any]], conference_ids: list[str]) -> int:
    """One update per field: a query without $or (see ``embedded_db``); each matches only what
    still holds text, so a second run changes nothing."""
    of = {"conference_id": {"$in": conference_ids}}
    changed = 0
    for field in ("answer.comment", "answer.representative", "reason"):
        result = await db[INVITATIONS].update_many({**of, field: {"$ne": None}}, {"$set": {field: None}})
        changed += result.modified_count
    return changed
