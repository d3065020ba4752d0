"""The one retry helper: what it retries, how long it waits, when it gives up."""

from __future__ import annotations

import asyncio

import pytest

from quartier_shared.retry import Retry


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses asked for, without waiting them (a fake clock)."""
    asked: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return asked


async def test_transient_failures_are_retried_with_growing_capped_pauses(pauses: list[float]) -> None:
    call = Flaky([OSError("down")] * 5)
    assert await Retry(base=0.5, cap=3.0).run(call) == "done"
    assert call.calls == 6
    assert pauses == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_it_gives_up_after_the_attempts_and_raises_the_last_failure(pauses: list[float]) -> None:
    call = Flaky([OSError("first"), OSError("second"), OSError("third"), OSError("fourth")])
    with pytest.raises(OSError, match="third"):
        await Retry(base=1.0, cap=10.0, attempts=3).run(call)
    assert call.calls == 3 and pauses == [1.0, 2.0]


async def test_a_failure_that_is_not_transient_is_raised_at_once(pauses: list[float]) -> None:
    call = Flaky([ValueError("bad input")])
    with pytest.raises(ValueError):
        await Retry(base=1.0, cap=10.0, transient=lambda exc: isinstance(exc, OSError)).run(call)
    assert call.calls == 1 and pauses == []


async def test_cancellation_is_never_retried(pauses: list[float]) -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await Retry(base=1.0, cap=10.0).run(cancelled)
    assert pauses == []


async def test_with_jitter_each_pause_lies_between_half_and_all_of_it(pauses: list[float]) -> None:
    call = Flaky([OSError("conflict")] * 40)
    assert await Retry(base=0.5, cap=3.0, jitter=True).run(call) == "done"
    plain = [Retry(base=0.5, cap=3.0).delay(n) for n in range(1, 41)]
    assert all(p / 2 <= got <= p for got, p in zip(pauses, plain, strict=True))
    assert len(set(pauses)) > 1  # drawn, not fixed
