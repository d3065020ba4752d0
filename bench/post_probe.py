"""`POST /conferences` timed while a fan-out runs: the issue's target is under 50 ms at the 99th
percentile during a 10,000-invitation fan-out.

Contract: between ``start()`` and ``stop()``, ``body`` is posted (the pipeline gives a conference
in its ``EMPTY_DISTRICT``: no bench actor lives there, so it fans out to nobody and adds no mail)
about every ``interval`` seconds, at most ``limit`` times; ``stop()`` returns each request's latency in milliseconds, in
order, and raises ``BenchError`` if a request failed or did not answer 201.

The requests go from a thread of their own with their own keep-alive connection, not from the
benchmark's event loop: the reader of the deliveries topic parses thousands of events on that
loop, and a POST waiting behind a batch of them would be timed as slow although the service
answered in time. A thread shares only the interpreter lock, given up every 5 ms at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from .cluster import BenchError

INTERVAL_SECONDS = 0.5
LIMIT = 1_200  # ten minutes at 0.5 s: a bound, so a stuck pipeline does not fill the database


class PostProbe:
    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        body: dict[str, Any],
        interval: float = INTERVAL_SECONDS,
        limit: int = LIMIT,
        transport: httpx.BaseTransport | None = None,  # tests: a scripted server
    ) -> None:
        self.url = url
        self.transport = transport
        self.body = body
        self.headers = dict(headers)
        self.interval = interval
        self.limit = limit
        self.latencies_ms: list[float] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="post-probe", daemon=True)

    def start(self) -> PostProbe:
        self._thread.start()
        return self

    def ended(self, timeout: float) -> bool:
        """Whether the requests ended by themselves (the bound reached, or one failed) within
        ``timeout`` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(timeout=60)  # a request in flight ends within the client's timeout
        if self._error is not None:
            raise BenchError(f"POST /conferences during the fan-out: {self._error}") from self._error
        return list(self.latencies_ms)

    def _loop(self) -> None:
        try:
            with httpx.Client(timeout=30, headers=self.headers, transport=self.transport) as http:
                while len(self.latencies_ms) < self.limit and not self._stop.is_set():
                    started = time.perf_counter()
                    response = http.post(f"{self.url}/conferences", json=self.body)
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if response.status_code != 201:
                        raise BenchError(f"answered {response.status_code}")
                    self.latencies_ms.append(elapsed_ms)
                    self._stop.wait(self.interval)
        except Exception as exc:  # reported by stop(), in the benchmark's thread
            self._error = exc
