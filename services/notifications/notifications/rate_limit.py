"""The relay's pace: at most SMTP_RATE_PER_MINUTE mails a minute, over every instance together.

A city's relay (Exchange, Microsoft 365, a data centre's) takes so many messages a minute and
answers 421/451 beyond. Counting in one process would let two instances send twice the rate, so
the count is kept in MongoDB (``smtp_pace``): one document per clock minute, whose ``count`` each
mail increments atomically (``find_one_and_update`` with ``$inc``, as the test-mail quota does;
no pipeline update, which the embedded database may not have). The n-th mail of a minute
(n <= rate) gets the slot ``minute + (n - 1) * 54 / rate`` seconds, so the minute's mails are
spread over it instead of all leaving at its first second, and the last leaves 6 seconds or more before
the minute ends (a mail a moment late still counts in its own minute at the relay); a mail that
finds its minute full tries the next one. The sender waits until its slot (``sending``), renewing
its lease if the wait is long, or defers the mail to a slot far off.

What it does not promise: a relay that counts a sliding minute may still see up to twice the rate
across the boundary of two minutes when mails come late in one; its 451s then defer those mails
(``deferrals``), nothing fails. Test mails (``POST /conferences/{id}/test-mail``) do not wait.

The documents go a while after their minute (a TTL index); a minute known full is remembered
per instance (``_full_before``), so a long queue does not re-count every full minute per mail.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

PACE = "smtp_pace"
PACE_KEPT_SECONDS = 3600  # after its minute
MINUTE = timedelta(minutes=1)
SPREAD = timedelta(seconds=54)  # of each minute, the part its slots are spread over


class Pace(Protocol):
    async def slot(self, now: datetime) -> datetime:
        """When the next mail may go (``now`` or later); each call takes one slot."""
        ...


class MongoPace:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], per_minute: int) -> None:
        self.collection = db[PACE]
        self.per_minute = per_minute
        self._full_before: datetime | None = None
        self._created: set[str] = set()  # minutes whose document this instance knows exists

    async def slot(self, now: datetime) -> datetime:
        minute = now.replace(second=0, microsecond=0)
        if self._full_before is not None:
            minute = max(minute, self._full_before)
        while True:
            taken = await self._take(minute)
            if taken <= self.per_minute:
                return max(now, minute + (taken - 1) * SPREAD / self.per_minute)
            minute += MINUTE
            self._full_before = minute

    async def _take(self, minute: datetime) -> int:
        """Count one more mail in ``minute``; returns how many that makes. The minute's document
        is inserted first, once (a concurrent insert of it is no error), and then only
        incremented: concurrent upserts of one new document are where databases differ."""
        key = minute.isoformat()
        while True:
            if key not in self._created:
                with contextlib.suppress(DuplicateKeyError):
                    await self.collection.insert_one({"_id": key, "minute": minute, "count": 0})
                self._created = {k for k in self._created if k > key} | {key}  # the past is not asked again
            doc = await self.collection.find_one_and_update(
                {"_id": key}, {"$inc": {"count": 1}}, return_document=ReturnDocument.AFTER
            )
            if doc is not None:
                return int(doc["count"])
            self._created.discard(key)  # gone (its TTL ran out while we were away): insert it again


async def create_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db[PACE].create_index("minute", expireAfterSeconds=PACE_KEPT_SECONDS)
