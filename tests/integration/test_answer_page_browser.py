"""The answer page in a real browser: Debian's Chromium driven by Playwright against the
conferences service served by uvicorn on a port of its own (real broker and database).

An invitee answers with the keyboard alone and sees it confirmed, and the coordinator's counts
show it; the language switch; a bad field shows its error next to it with 422; axe-core finds no
serious or critical violation on the answer page (both languages), the error page, the 404 and
the 410 page. Every page loads only from our own host and breaks none of its own CSP rules.

``QUARTIER_SCREENSHOT=docs/answer-page.png`` (``make screenshots``) keeps the filled-in answer
page as a screenshot there; by default it goes to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from axe_playwright_python.async_playwright import Axe
from fastapi import FastAPI
from playwright.async_api import Browser, ConsoleMessage, Page, Request

from conferences.app import build
from conferences.settings import Settings
from quartier.embedded import Infrastructure, free_port
from quartier_shared import links
from quartier_shared.events import ACTORS_TOPIC
from tests.helpers import actor_registered, caught_up, conference_body, envelope_of, eventually, publish, settings_for

BLOCKING = {"serious", "critical"}
NAME = "Erika Mustermann"


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` served over HTTP on a free port (with its lifespan: MongoDB, Kafka, the relay)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()  # a server that failed to start fails the test with its error
        return server.started

    try:
        await eventually(started)
        await app.state.runtime.kafka_connected.wait()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Stack:
    def __init__(self, base_url: str, staff: httpx.AsyncClient, conference: dict[str, Any], signing: Path) -> None:
        self.base_url, self.staff, self.conference = base_url, staff, conference
        self.key = links.load_private_key(str(signing))

    def link(self, index: int = 0, expires_at: datetime | None = None) -> str:
        invitation_id = self.conference["invitations"][index]["id"]
        expires = expires_at or datetime.fromisoformat(self.conference["ends_at"])
        return f"{self.base_url}/rsvp/{links.sign(invitation_id, expires, self.key)}"

    async def detail(self) -> dict[str, Any]:
        found: dict[str, Any] = (await self.staff.get(f"/conferences/{self.conference['id']}")).json()
        return found


@pytest.fixture
async def stack(infra: Infrastructure, database_name: str, tmp_path: Path) -> AsyncIterator[Stack]:
    signing, verifying = links.generate_pair(tmp_path / "links")
    app = build(settings_for(Settings, infra, database_name, link_verify_key=str(verifying)))
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url, headers=infra.auth_headers()) as staff:
        await publish(infra.kafka_bootstrap, [envelope_of(actor_registered("IV")) for _ in range(2)])
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "conferences", ACTORS_TOPIC))
        response = await staff.post("/conferences", json=conference_body())
        assert response.status_code == 201, response.text

        async def both_invited() -> dict[str, Any] | None:
            found: dict[str, Any] = (await staff.get(f"/conferences/{response.json()['id']}")).json()
            return found if len(found["invitations"]) == 2 else None

        yield Stack(base_url, staff, await eventually(both_invited), signing)


class Watched:
    """A page, with every request it made and every console error (CSP violations show there)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def assert_stayed_home(self, base_url: str) -> None:
        home = urlsplit(base_url).netloc
        assert {urlsplit(url).netloc for url in self.requests} == {home}, self.requests
        # A 4xx page logs "Failed to load resource" for itself; anything else is a finding.
        assert not [e for e in self.console_errors if "Failed to load resource" not in e], self.console_errors


async def watched_page(browser: Browser, language: str = "de-DE") -> Watched:
    context = await browser.new_context(locale=language)
    return Watched(await context.new_page())


async def assert_accessible(page: Page) -> None:
    results = await Axe().run(page)
    assert results.response["testEngine"]["name"] == "axe-core"  # it ran, in spite of the page's CSP
    found = [(v["id"], v["impact"]) for v in results.response["violations"] if v["impact"] in BLOCKING]
    assert not found, found


async def tab_to(page: Page, element_id: str, limit: int = 40) -> None:
    """Press Tab until ``element_id`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} never got the focus by Tab")


async def test_an_invitee_answers_with_the_keyboard_alone_in_either_language(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    watched = await watched_page(browser)
    page = watched.page
    response = await page.goto(stack.link())
    assert response is not None and response.status == 200
    assert await page.get_attribute("html", "lang") == "de"
    await assert_accessible(page)

    # The skip link comes first and leads to the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.getAttribute('href')") == "#main"

    # The language switch, by keyboard: English, and everything follows.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent.trim()") == "English"
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.get_by_role("heading", name="Your answer").is_visible()
    await assert_accessible(page)

    await tab_to(page, "answer-accepted")
    await page.keyboard.press("Space")
    await tab_to(page, "attendees")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("2")
    await tab_to(page, "representative")
    await page.keyboard.type(NAME)
    await tab_to(page, "interpreter_language")
    await page.keyboard.press("ArrowDown")  # the first of the frequently needed languages: Arabic
    await tab_to(page, "accessibility")
    await page.keyboard.press("Space")
    await tab_to(page, "childcare")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("1")
    assert await page.get_by_label("Interpreter needed for").input_value() == "ar"
    assert await page.get_by_label("We need step-free access").is_checked()
    await page.keyboard.press("Tab")  # the comment stays empty
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.type") == "submit"
    async with page.expect_navigation() as navigation:
        await page.keyboard.press("Enter")
    answered = await navigation.value
    assert answered is not None and answered.status == 200
    assert await page.get_by_text("Thank you, your answer has been saved.").is_visible()
    assert await page.get_by_text("Your current answer: Yes, we will come (2 people)").is_visible()
    await assert_accessible(page)
    screenshot = Path(os.environ.get("QUARTIER_SCREENSHOT") or tmp_path / "answer-page.png")
    await page.screenshot(path=str(screenshot), full_page=True)
    watched.assert_stayed_home(stack.base_url)

    found = await stack.detail()
    assert (found["counts"]["accepted"], found["counts"]["attendees"], found["counts"]["no_answer"]) == (1, 2, 1)
    assert (found["counts"]["children"], found["counts"]["step_free"]) == (1, 1)
    assert found["needs"] == {"interpreters": {"ar": 2}}
    [answer] = [i["answer"] for i in found["invitations"] if i["answer"]]
    assert answer["representative"] == NAME


async def test_a_bad_field_is_shown_next_to_it_and_the_error_pages_are_accessible(
    stack: Stack, browser: Browser
) -> None:
    watched = await watched_page(browser)
    page = watched.page
    await page.goto(stack.link(1))
    await page.get_by_label("Ja, wir kommen").check()
    await page.get_by_label("Anzahl der Personen, die kommen (1 bis 10)").fill("0")
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Antwort senden").click()
    refused = await navigation.value
    assert refused is not None and refused.status == 422
    attendees = page.get_by_label("Anzahl der Personen, die kommen (1 bis 10)")
    assert await attendees.get_attribute("aria-invalid") == "true"
    assert await attendees.get_attribute("aria-describedby") == "attendees-error"
    error = page.locator("#attendees-error")
    assert "eine Zahl von 1 bis 10" in await error.inner_text()
    # Next to the field: the error is in the field's own group, right before it.
    assert await error.evaluate("e => e.nextElementSibling.id") == "attendees"
    assert await page.get_by_label("Ja, wir kommen").is_checked()  # what was chosen stays
    await assert_accessible(page)

    unknown = await page.goto(f"{stack.base_url}/rsvp/not-a-link")
    assert unknown is not None and unknown.status == 404
    assert await page.get_by_role("heading", name="Dieser Link ist nicht gültig").is_visible()
    await assert_accessible(page)

    expired = await page.goto(stack.link(1, expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    assert expired is not None and expired.status == 410
    assert await page.get_by_role(
        "heading", name="Für diese Konferenz werden keine Antworten mehr angenommen"
    ).is_visible()
    await assert_accessible(page)
    watched.assert_stayed_home(stack.base_url)
    assert (await stack.detail())["counts"]["no_answer"] == 2  # nothing was recorded
