"""Conferences in the staff portal, in a real browser: Debian's Chromium driven by Playwright
against the portal and the actors, conferences and notifications services, each served by
uvicorn in this process (real broker, database and SMTP sink).

One stack and one browser for the module, a dozen actors: the coordinator schedules a draft for
district IV, sees the mail's preview and sends a test mail, publishes, and watches the
invitations turn to "sent" on the page without a reload (the page's script polls its fragment);
two invitees answer through the personal links in their mails (the answer page); the totals on
the portal page change; a change of venue goes out to every invitee; a second nudge within the
hour is refused in words; the dashboard counts the answers; one invitation is sent again and the
conference is cancelled with a reason that reaches every invitee. Then an operator sees a dead
letter of notifications (headers only) and replays it. axe-core finds nothing serious or critical
on the form, the list, the conference page, the dashboard and the operators' page.

``QUARTIER_SCREENSHOT_DIR=docs`` (``make screenshots``) keeps ``portal-conference.png`` and
``portal-dashboard.png`` there.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

import actors.app
import actors.settings
import conferences.app
import conferences.settings
import notifications.app
import notifications.settings
from portal.app import build as build_portal
from quartier.embedded import Infrastructure, free_port
from quartier.issuer import LocalIssuer
from quartier_shared.events import ACTORS_TOPIC, DEAD_LETTER_TOPIC, INVITATIONS_TOPIC
from tests.helpers import (
    CONFERENCE_DAY,
    actor_body,
    caught_up,
    eventually,
    publish_raw,
    read_mails,
    read_topic,
    settings_for,
)
from tests.integration.test_answer_page_browser import assert_accessible, serving
from tests.integration.test_portal_browser import _serve, portal_settings, screenshot, sign_in

ACTORS = 12
NEW_VENUE = "Bezirksrathaus Borbeck"


def body_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def mails_saying(folder: Path, words: str) -> list[EmailMessage]:
    return [m for m in read_mails(folder) if words in body_of(m)] if folder.exists() else []


async def mails_arrive(folder: Path, words: str, count: int) -> None:
    async def arrived() -> bool:
        return len(mails_saying(folder, words)) >= count

    await eventually(arrived)


async def test_a_conference_from_draft_to_answers_and_change(
    infra: Infrastructure,
    database_name: str,
    issuer: LocalIssuer,
    smtp_sink: tuple[int, Path],
    browser: Browser,
    tmp_path: Path,
) -> None:
    maildir = smtp_sink[1]
    actors_app = actors.app.build(settings_for(actors.settings.Settings, infra, f"{database_name}_a"))
    conferences_app = conferences.app.build(settings_for(conferences.settings.Settings, infra, f"{database_name}_c"))
    async with serving(actors_app) as actors_url, serving(conferences_app) as conferences_url:
        # the personal links in the mails open this conferences service's answer page
        mailing = settings_for(
            notifications.settings.Settings, infra, f"{database_name}_n", public_base_url=conferences_url
        )
        async with serving(notifications.app.build(mailing)) as notifications_url:
            async with httpx.AsyncClient(headers=infra.auth_headers("coordinator")) as api:
                for n in range(1, ACTORS + 1):
                    body = actor_body(
                        name=f"Nachbarschaftsverein Borbeck {n:02d}",
                        email=f"verein{n:02d}@borbeck.example.org",
                        language="en" if n % 4 == 0 else "de",
                    )
                    assert (await api.post(f"{actors_url}/actors", json=body)).status_code == 201
            bootstrap = infra.kafka_bootstrap
            await eventually(lambda: caught_up(bootstrap, "conferences", ACTORS_TOPIC))
            await eventually(lambda: caught_up(bootstrap, "notifications", ACTORS_TOPIC))
            port = free_port()
            settings = portal_settings(issuer, actors_url, conferences_url, port, notifications_url)
            async with _serve(build_portal(settings), port) as portal_url:
                page = await sign_in(browser, portal_url, "demo-coordinator")
                await coordinator_walk(page, portal_url, maildir, tmp_path)
                # a message notifications cannot read: a dead letter, for the operator to replay
                await publish_raw(bootstrap, INVITATIONS_TOPIC, b"\x00not json", key=b"invitation-garbage")
                await read_topic(bootstrap, DEAD_LETTER_TOPIC, until=lambda records: len(records) >= 1)
                await operator_walk(await sign_in(browser, portal_url, "demo-operator"), portal_url)


async def coordinator_walk(page: Page, portal_url: str, maildir: Path, tmp_path: Path) -> None:
    # the form: a time error stands at its field, the rest as typed
    await page.click("nav[aria-label=Portal] >> text=Konferenzen")
    await assert_accessible(page)
    await page.click("#schedule")
    await page.select_option("#district", "IV")
    await page.fill("#title", "Integrationskonferenz Borbeck")
    await page.fill("#day", "2001-03-04")  # in the past: the service's 422, at the start time
    await page.fill("#venue_name", "Kulturzentrum Borbeck")
    await page.fill("#venue_address", "Musterstraße 1, 45355 Essen")
    await page.fill("#agenda", "Begrüßung\nBericht aus dem Quartier\nArbeitsgruppen")
    await page.click("#save")
    assert await page.locator("#starts-error").is_visible()
    assert await page.input_value("#venue_name") == "Kulturzentrum Borbeck"
    await assert_accessible(page)
    await page.fill("#day", CONFERENCE_DAY)
    await page.click("#save")

    # a draft: nobody invited; the mail's preview (once its event reached notifications); a test mail
    assert await page.get_attribute("#status", "data-status") == "draft"
    for _ in range(50):
        if await page.locator("#preview-subject").count():
            break
        await page.wait_for_timeout(200)
        await page.reload()
    assert "Integrationskonferenz Borbeck" in await page.inner_text("#preview-subject")
    assert "Kulturzentrum Borbeck" in await page.inner_text("#preview-text")
    await assert_accessible(page)
    await page.fill("#email", "koordination@stadt.example.org")
    await page.click("#send-test")
    assert await page.locator("#done").is_visible()
    assert any(str(m["Subject"]).startswith("[Test] ") for m in read_mails(maildir))

    # publish: the statuses turn to "sent" on the page without a reload
    await page.click("#publish")
    await page.evaluate("window.stillTheSamePage = true")
    rows = page.locator("#invitations tbody tr")
    await expect(page.locator("#invitations tbody tr[data-status=sent]")).to_have_count(ACTORS, timeout=30_000)
    assert await rows.count() == ACTORS
    assert await page.evaluate("window.stillTheSamePage") is True
    assert "Nachbarschaftsverein Borbeck 01" in await rows.nth(0).inner_text()
    await assert_accessible(page)

    # two invitees answer through the links in their mails; the totals change on the portal page
    invitations = [m for m in read_mails(maildir) if not str(m["Subject"]).startswith("[Test] ")]
    links = [re.search(r"http\S+/rsvp/\S+", body_of(m)) for m in invitations]
    found = [link.group() for link in links if link]
    assert len(found) == ACTORS
    answering = await page.context.new_page()
    for link, answer in ((found[0], "accepted"), (found[1], "tentative")):
        await answering.goto(link)
        await answering.check(f"#answer-{answer}")
        await answering.fill("#attendees", "3")
        if answer == "accepted":
            await answering.select_option("#interpreter_language", "ar")
            await answering.check("#accessibility")
            await answering.fill("#childcare", "2")
        await answering.click("button[type=submit]")
        await answering.wait_for_load_state()
    await answering.close()
    totals = page.locator("#totals")
    await expect(totals.locator("[data-total=accepted]")).to_have_text("1", timeout=15_000)
    await expect(totals.locator("[data-total=tentative]")).to_have_text("1", timeout=15_000)
    assert await totals.locator("[data-total=no_answer]").inner_text() == str(ACTORS - 2)
    assert await totals.locator("[data-total=attendees]").inner_text() == "3"  # of the acceptances
    assert await totals.locator("[data-total=children]").inner_text() == "2"
    assert await totals.locator("[data-total=step_free]").inner_text() == "1"
    assert "ar: 3" in await totals.locator("[data-total=interpreters]").inner_text()
    assert await page.evaluate("window.stillTheSamePage") is True
    await page.screenshot(path=str(screenshot("portal-conference.png", tmp_path)), full_page=True)

    # a change of venue: saved, and an update mail goes to every invitee
    conference = page.url.split("?")[0]
    await page.click("#change")
    await assert_accessible(page)
    await page.fill("#venue_name", NEW_VENUE)
    await page.click("#save")
    assert await page.locator("#done").is_visible()
    assert NEW_VENUE in await page.inner_text("#venue")

    await mails_arrive(maildir, NEW_VENUE, ACTORS)

    # nudging twice within the hour: the second is refused, said on the page
    await page.click("#nudge")
    assert await page.locator("#done").is_visible()
    await page.click("#nudge")
    assert "Stunde" in await page.inner_text("#notice")

    # the dashboard: two of the dozen answered in IV; its chart has a title, a description and a table
    await page.click("nav[aria-label=Portal] >> text=Übersicht")
    assert await page.inner_text("#district-rates tr[data-district=IV] [data-rate]") == "17 %"
    assert await page.inner_text("#kind-rates tr[data-kind=welfare_association] [data-rate]") == "17 %"
    assert "IV: 17 %" in (await page.text_content("#chart-desc") or "")
    assert await page.locator("#silent-none").is_visible()  # one conference: nobody has two unanswered
    await assert_accessible(page)
    await page.screenshot(path=str(screenshot("portal-dashboard.png", tmp_path)), full_page=True)

    # one invitation sent again, then the conference called off with a reason
    await page.goto(conference)
    await page.locator("#invitations tbody tr").first.locator("button").click()
    assert "erneut gesendet" in await page.inner_text("#done")
    await page.fill("#reason", "Raum nicht verfügbar")
    await page.click("#cancel")
    assert await page.get_attribute("#status", "data-status") == "cancelled"
    await mails_arrive(maildir, "Raum nicht verfügbar", ACTORS)
    await page.context.close()


async def operator_walk(page: Page, portal_url: str) -> None:
    await page.click("#to-operations")
    notifications_part = page.locator("section[data-service=notifications]")
    row = notifications_part.locator("tbody tr").first
    assert "ValidationError" in await row.inner_text()
    assert INVITATIONS_TOPIC in await row.inner_text()
    assert "not json" not in await page.content()  # never the value
    assert await page.locator("section[data-service=actors] tbody tr").count() == 0  # each service its own
    await assert_accessible(page)
    await row.locator("button").click()
    assert "seinem Dienst erneut übergeben" in await page.inner_text("#done")
    await page.context.close()
