"""The unsubscribe page in a real browser (Debian's Chromium through Playwright, the conferences
service served by uvicorn, real broker and database): a person unsubscribes with the keyboard
alone; axe-core finds no serious or critical violation on the question, the done page and the
404 page, in German and English; every page loads only from our own host."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord
from playwright.async_api import Browser

from conferences.app import build
from conferences.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared import links
from quartier_shared.events import UNSUBSCRIBES_TOPIC, Envelope
from tests.helpers import envelopes, read_topic, settings_for
from tests.integration.test_answer_page_browser import (
    assert_accessible,
    serving,
    tab_to,
    watched_page,
)


@pytest.mark.parametrize(("locale", "language", "button", "done"), [
    ("de-DE", "de", "Keine E-Mails mehr erhalten", "Sie erhalten keine E-Mails mehr von uns."),
    ("en-GB", "en", "Receive no more e-mails", "You will receive no more e-mails from us."),
])  # fmt: skip
async def test_a_person_unsubscribes_with_the_keyboard_alone(
    infra: Infrastructure,
    database_name: str,
    tmp_path: Path,
    browser: Browser,
    locale: str,
    language: str,
    button: str,
    done: str,
) -> None:
    signing, verifying = links.generate_pair(tmp_path / "links")
    key = links.load_private_key(str(signing))
    actor_id = str(uuid.uuid4())
    token = links.sign(actor_id, datetime.now(UTC) + timedelta(days=365), key, purpose=links.UNSUBSCRIBE)
    app = build(settings_for(Settings, infra, database_name, link_verify_key=str(verifying)))
    async with serving(app) as base_url:
        watched = await watched_page(browser, locale)
        page = watched.page
        response = await page.goto(f"{base_url}/unsubscribe/{token}")
        assert response is not None and response.status == 200
        assert await page.get_attribute("html", "lang") == language
        await assert_accessible(page)

        await tab_to(page, "unsubscribe")
        assert (await page.evaluate("document.activeElement.textContent")).strip() == button
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        assert done in await page.content()
        await assert_accessible(page)

        # Recorded once, with the actor's id and nothing else.
        def mine(records: list[ConsumerRecord[bytes, bytes]]) -> list[Envelope]:
            return [e for e in envelopes(records, "UnsubscribeRequested") if e.payload["actor_id"] == actor_id]

        recorded = await read_topic(infra.kafka_bootstrap, UNSUBSCRIBES_TOPIC, until=lambda r: len(mine(r)) >= 1)
        assert [set(e.payload) for e in mine(recorded)] == [{"actor_id", "requested_at"}]

        not_ours = await page.goto(f"{base_url}/unsubscribe/{token[:-4]}{'BBBB' if token.endswith('AAAA') else 'AAAA'}")
        assert not_ours is not None and not_ours.status == 404
        await assert_accessible(page)
        watched.assert_stayed_home(base_url)
