"""Test infrastructure: real servers (the embedded stack), on free ports, in temporary folders,
so `make test` runs beside a `make run`."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from quartier.embedded import EMBEDDED_KAFKA_TUNING, Infrastructure, free_port
from quartier.issuer import LocalIssuer
from quartier.issuer import serve as serve_issuer
from quartier.smtp_sink import Answer
from quartier.smtp_sink import serve as serve_smtp
from quartier_shared import links
from tests import infra as test_infra
from tests.infra import chosen_infra

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def infra_kind() -> str:
    """'docker' (testcontainers) where a Docker engine answers, else 'embedded'; see tests/infra.py."""
    return chosen_infra()


@pytest.fixture(scope="session")
def mongo_uri(infra_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MongoDB server for the session; each test uses databases of its own."""
    with test_infra.mongodb(infra_kind, tmp_path_factory.mktemp("mongo")) as uri:
        yield uri


@pytest.fixture
def kafka(infra_kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh broker per test: topics, offsets and groups of one test never meet another's."""
    with test_infra.kafka(infra_kind, tmp_path / "kafka") as bootstrap:
        yield bootstrap


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An in-process SMTP sink: (port, mail folder). 550 for rejected@example.org."""
    port, folder = free_port(), tmp_path / "mail"
    controller = serve_smtp("127.0.0.1", port, folder, answers={"rejected@example.org": Answer(550)})
    yield port, folder
    controller.stop()


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIssuer]:
    """A token issuer for the session: its JWKS served on a thread; ``infra.auth_headers()`` mints."""
    found, http = serve_issuer(tmp_path_factory.mktemp("auth"), free_port())
    yield found
    http.shutdown()


@pytest.fixture(scope="session")
def link_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The personal-link key pair, as the embedded stack gives it to every service (paths)."""
    signing, verifying = links.generate_pair(tmp_path_factory.mktemp("links"))
    return {"LINK_SIGNING_KEY": str(signing), "LINK_VERIFY_KEY": str(verifying)}


@pytest.fixture
def infra(
    infra_kind: str,
    kafka: str,
    mongo_uri: str,
    smtp_sink: tuple[int, Path],
    issuer: LocalIssuer,
    link_keys: dict[str, str],
) -> Infrastructure:
    # The short consumer timings suit Tansu; a real Kafka refuses sessions under 6 s.
    tuning = dict(EMBEDDED_KAFKA_TUNING) if infra_kind == "embedded" else {}
    return Infrastructure(kafka, mongo_uri, "127.0.0.1", smtp_sink[0], tuning | link_keys, issuer)


@pytest.fixture
def database_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can print logs of a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium, which the browser tests drive through Playwright."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium (as root)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


# --- a test that hangs says where -------------------------------------------------------------
# pytest-timeout's dump shows the threads, and a hung asyncio test's main thread only ever shows
# the event loop waiting. Shortly before the timeout, every unfinished asyncio task prints its
# stack (into the test's captured stderr), so the await that never returns is named.
HANG_DUMP_BEFORE_TIMEOUT_S = 20.0


def _dump_asyncio_tasks() -> None:
    out = sys.__stderr__
    tasks = [t for t in list(getattr(asyncio.tasks, "_all_tasks", ())) if not t.done()]
    print(f"--- {len(tasks)} unfinished asyncio tasks, {HANG_DUMP_BEFORE_TIMEOUT_S:.0f} s before the timeout", file=out)
    for task in tasks:
        print(f"--- task {task.get_name()}{' (cancelling)' if task.cancelling() else ''}", file=out)
        # A suspended task's own stack is one frame; its awaits, outermost first, are the chain.
        awaited: Any = task.get_coro()
        while awaited is not None and hasattr(awaited, "cr_frame"):
            frame = awaited.cr_frame
            if frame is not None:
                print(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}", file=out)
            awaited = awaited.cr_await
        if awaited is not None:
            print(f"  awaiting {awaited!r}"[:300], file=out)


@pytest.fixture(autouse=True)
def _asyncio_tasks_on_hang(request: pytest.FixtureRequest) -> Iterator[None]:
    timeout = float(request.config.getini("timeout") or 0)
    if timeout <= HANG_DUMP_BEFORE_TIMEOUT_S:
        yield
        return
    timer = threading.Timer(timeout - HANG_DUMP_BEFORE_TIMEOUT_S, _dump_asyncio_tasks)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()
