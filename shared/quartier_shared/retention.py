"""Retention: each service deletes, once a day, the personal data it has kept long enough.

GDPR Art. 5(1)(e): what is no longer needed goes. Each service names what expires and when in a
``RetentionJob``: a function of the clock that deletes (or strips of its free text) everything
that expired before ``now`` and returns how many records of each kind it changed. ``run_daily``
runs it when the service starts and then every day, as a background task beside the outbox
relay; the clock is passed in, so tests move it instead of waiting a year.

A job is idempotent (what it deleted is gone; what it stripped matches no more) and safe on
several instances at once: each runs it, and the second finds nothing left. How long things are
kept is a setting (``RETENTION_MONTHS``, counted from the end of the conference they belong to).
"""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .logging import get_logger
from .retry import Retry

log = get_logger(__name__)

DAY = timedelta(days=1)


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` ``months`` calendar months earlier; the 31st of a shorter month becomes its last day."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class RetentionJob:
    """``apply(now)`` deletes what expired before ``now``; returns the number of records changed
    per kind (for the log: counts only, never what they held)."""

    name: str
    apply: Callable[[datetime], Awaitable[dict[str, int]]]

    async def run_once(self, now: datetime) -> dict[str, int]:
        changed = await self.apply(now)
        log.info("retention_applied", job=self.name, **changed)
        return changed


async def run_daily(
    job: RetentionJob,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    every: timedelta = DAY,
    retry_base: float = 5.0,
) -> None:
    """Run ``job`` now and then every ``every``, until cancelled. A failed run (MongoDB away) is
    tried again after a pause, with the clock read again."""
    retry = Retry(base=retry_base, cap=600.0)
    while True:
        await retry.run(lambda: job.run_once(clock()), event="retention_retrying", job=job.name)
        await asyncio.sleep(every.total_seconds())
