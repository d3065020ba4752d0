"""The daily loop of a retention job, with a clock of the test's own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from quartier_shared.retention import RetentionJob, run_daily


async def test_the_job_runs_at_start_then_every_period_with_the_clock_and_survives_a_failed_run() -> None:
    seen: list[datetime] = []
    done = asyncio.Event()
    ticks = iter(datetime(2028, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(100))

    async def apply(now: datetime) -> dict[str, int]:
        seen.append(now)
        if len(seen) == 2:
            raise ConnectionError("MongoDB away")  # tried again, the loop goes on
        if len(seen) == 4:
            done.set()
            await asyncio.Event().wait()  # holds the loop here until it is cancelled
        return {"records": 0}

    loop = asyncio.create_task(
        run_daily(RetentionJob("test", apply), clock=lambda: next(ticks), every=timedelta(0), retry_base=0.0)
    )
    await asyncio.wait_for(done.wait(), 5)
    loop.cancel()
    assert [d.day for d in seen] == [1, 2, 3, 4]
