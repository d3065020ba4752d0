"""The workers' wake-up call lets a cancellation through even when it meets a wake-up (Python
3.11's asyncio.wait_for lost it then, and a service's stop waited forever for its relay)."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

from quartier_shared import runtime as runtime_module
from quartier_shared.runtime import Runtime
from quartier_shared.settings import ServiceSettings
from quartier_shared.wakeup import Wakeup


async def _worker(wakeup: Wakeup) -> None:
    while True:  # as the outbox relay and the reminders worker loop
        await wakeup.wait(60)


async def test_a_cancellation_in_the_same_turn_as_a_wake_up_stops_the_worker() -> None:
    wakeup = Wakeup()
    worker = asyncio.create_task(_worker(wakeup))
    await asyncio.sleep(0)  # the worker now waits
    wakeup.wake()
    worker.cancel()
    done, _ = await asyncio.wait([worker], timeout=5)
    assert done == {worker} and worker.cancelled()


async def test_the_old_way_lost_that_cancellation() -> None:
    """What the test above guards against, shown on the pattern Wakeup replaced."""
    event = asyncio.Event()

    async def old_worker() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 60)
            event.clear()

    worker = asyncio.create_task(old_worker())
    await asyncio.sleep(0)
    event.set()
    worker.cancel()
    done, _ = await asyncio.wait([worker], timeout=0.5)
    lost = not done
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    assert lost == (sys.version_info < (3, 12))  # fixed in 3.12


async def test_a_wake_up_ends_the_wait_once_and_the_time_ends_it_otherwise() -> None:
    wakeup = Wakeup()
    wakeup.wake()
    await asyncio.wait_for(wakeup.wait(60), timeout=5)  # woken before: returns at once
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wakeup.wait(60), timeout=0.05)  # used up: waits again
    await wakeup.wait(0.01)  # its own time passes: returns


async def test_a_stop_does_not_wait_forever_for_a_worker_that_lost_its_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime_module, "STOP_WORKERS_SECONDS", 0.2)
    settings = ServiceSettings(mongodb_uri="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100")
    runtime = Runtime(settings, create_indexes=lambda db: asyncio.sleep(0))
    released = asyncio.Event()

    async def deaf_worker() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # the bug Wakeup fixed, on purpose
                await asyncio.sleep(60)

    async def failed_worker() -> None:
        raise RuntimeError("failed before the stop")

    deaf = asyncio.create_task(deaf_worker(), name="deaf")
    runtime._tasks = [deaf, asyncio.create_task(failed_worker())]
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(10):
            await runtime.stop()  # returns although one worker is still running
        assert not deaf.done()
    finally:
        released.set()
        deaf.cancel()
        await asyncio.wait([deaf], timeout=5)
