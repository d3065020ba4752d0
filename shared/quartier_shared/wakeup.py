"""A worker's wake-up call: ``Wakeup.wait(seconds)`` returns once ``wake()`` was called or
``seconds`` passed, whichever comes first, and lets a cancellation through in every case.

The contract:
- ``wake()`` may be called any number of times, from any task of the loop; one pending call
  ends the next (or the current) ``wait`` early, then it is used up.
- ``wait`` never swallows a cancellation: the worker that awaits it stops when it is cancelled.

Why not ``asyncio.wait_for(event.wait(), seconds)``: on Python 3.11 wait_for returns the
result instead of raising when the event is set in the same turn of the loop as the task is
cancelled (fixed in 3.12). A worker loop that lost its cancellation so ran on forever, and the
service's stop waited for it forever: a test that stopped an app right after a write had woken
its outbox relay hung until pytest's timeout, about one CI run in five. ``asyncio.timeout``
counts cancellations and raises them.
"""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until ``wake()`` was called (since the last wait ended), or ``seconds`` passed."""
        with contextlib.suppress(TimeoutError):  # only our own deadline: a cancellation is raised
            async with asyncio.timeout(seconds):
                await self._event.wait()
        self._event.clear()
