"""Retention in the actors service: audit entries older than ``AUDIT_RETENTION_MONTHS``
(``quartier_shared.retention``).

The audit log (``audit``) proves who read, exported or erased an actor's data; it names staff by
their token subject, so it is personal data too and is not kept for ever. The actors themselves,
their consent history and erasure records stay for as long as the actor is registered: the
data-protection officer erases an actor, not a job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from quartier_shared.retention import RetentionJob, months_before

from .repository import AUDIT


def retention_job(db: AsyncDatabase[dict[str, Any]], months: int) -> RetentionJob:
    async def apply(now: datetime) -> dict[str, int]:
        result = await db[AUDIT].delete_many({"at": {"$lt": months_before(now, months)}})
        return {"audit_entries": result.deleted_count}

    return RetentionJob("actors-audit", apply)
