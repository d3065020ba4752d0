"""Retrying with exponential backoff: the one helper behind every retry loop in Quartier.

``Retry(base, cap, attempts, transient)`` runs a call until it succeeds. A failure that
``transient`` accepts is retried after ``base * 2**n`` seconds (at most ``cap``), up to
``attempts`` calls in all (``None``: without limit); any other failure, and the last one, is
raised to the caller, which decides what giving up means (dead-letter, a failed mail, ...).
Cancellation is never retried.

``jitter=True`` draws each pause at random between half of it and all of it. For failures that
callers cause each other (transactions that conflict over one document): with equal pauses they
would all come back at the same moment and conflict again, round after round.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")


def always(_: BaseException) -> bool:
    return True


@dataclass(frozen=True)
class Retry:
    base: float
    cap: float
    attempts: int | None = None
    transient: Callable[[BaseException], bool] = always
    jitter: bool = False

    def delay(self, attempt: int) -> float:
        """The pause after the ``attempt``-th failure (1-based)."""
        pause = float(min(self.base * 2 ** min(attempt - 1, 30), self.cap))
        return pause * random.uniform(0.5, 1.0) if self.jitter else pause  # noqa: S311 (spreading, not secrecy)

    async def run(self, call: Callable[[], Awaitable[T]], *, event: str = "retrying", **log_fields: Any) -> T:
        """``call()``'s result; each retry is logged as ``event`` with ``log_fields`` (ids only:
        no personal data)."""
        attempt = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                attempt += 1
                if not self.transient(exc) or (self.attempts is not None and attempt >= self.attempts):
                    raise
                wait = self.delay(attempt)
                log.warning(event, error=type(exc).__name__, attempt=attempt, retry_in_s=wait, **log_fields)
                await asyncio.sleep(wait)
