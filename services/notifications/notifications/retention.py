"""Retention in the notifications service: the deliveries of conferences that ended more than
``RETENTION_MONTHS`` ago (``quartier_shared.retention``).

A delivery is this service's log of one mail: to whom (the actor's id), its Message-ID, and the
SMTP server's reply when it failed. Once its conference ended long enough ago, the whole record
goes: the coordinator's figures live in the conferences service, and no event of that conference
can arrive any more (the topics keep events for weeks, not months). A delivery is judged by the
conference details it carries (those its mail was written from).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from quartier_shared.retention import RetentionJob, months_before

from .repository import DELIVERIES

ENDS_AT = "conference.ends_at"


def retention_job(db: AsyncDatabase[dict[str, Any]], months: int) -> RetentionJob:
    async def apply(now: datetime) -> dict[str, int]:
        result = await db[DELIVERIES].delete_many({ENDS_AT: {"$lt": months_before(now, months)}})
        return {"deliveries": result.deleted_count}

    return RetentionJob("notifications-deliveries", apply)
