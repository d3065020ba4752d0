"""The staff portal in a real browser: Debian's Chromium driven by Playwright against the portal,
the actors and the conferences service, each served by uvicorn on a port of its own (real broker
and database), and the test issuer's sign-in (the code flow with PKCE, ``quartier.login``).

One stack and one browser for the whole walk, to keep it fast: a coordinator signs in and sees
the nine districts, previews a CSV with valid and invalid rows, imports the valid ones and sees
them in the list; a quarter manager of IV sees neither district III's actors nor buttons for an
actor that is also in III; a form error stands next to its field; a form without the CSRF token
is refused; a draft's page says so where the preview would be when the notifications service is
down; axe-core finds nothing serious or critical on each page. A second test: a service that is
down gives the banner, not a stack trace.

``QUARTIER_SCREENSHOT_DIR=docs`` (``make screenshots``) keeps ``portal-start.png`` and
``portal-import.png`` there; by default they go to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, FilePayload, Page

import actors.app
import actors.settings
import conferences.app
import conferences.settings
from portal.app import build as build_portal
from portal.settings import Settings as PortalSettings
from quartier.embedded import Infrastructure, free_port
from quartier.issuer import LocalIssuer
from tests.helpers import actor_body, conference_body, eventually, settings_for
from tests.integration.test_answer_page_browser import assert_accessible, serving

CSV_FILE = (
    "name;kind;districts;email;language;consent\r\n"
    "Stadtteilbüro Altendorf;public_agency;IV;altendorf@stadtteil.example.org;de;ja\r\n"
    "Nachbarschaftshilfe Gerschede;volunteer;IV;gerschede@nachbarn.example.org;en;nein\r\n"
    "Ohne Bezirk;other;XII;ohne@example.org;de;ja\r\n"
    "Kaputte Adresse;other;IV;keine-adresse;de;ja\r\n"
).encode("cp1252")


def portal_settings(
    issuer: LocalIssuer, actors_url: str, conferences_url: str, port: int, notifications_url: str | None = None
) -> PortalSettings:
    return PortalSettings(
        actors_url=actors_url,
        conferences_url=conferences_url,
        # none started here: the notifications service is down (a draft's page says so)
        notifications_url=notifications_url or f"http://127.0.0.1:{free_port()}",
        auth_issuer=issuer.issuer,
        auth_jwks_url=issuer.jwks_url,
        portal_port=port,
        portal_public_url=f"http://127.0.0.1:{port}",
        session_secret="test-session-secret-of-the-portal",
    )


async def sign_in(browser: Browser, portal_url: str, user: str) -> Page:
    context = await browser.new_context(locale="de-DE")
    page = await context.new_page()
    await page.goto(portal_url)
    await assert_accessible(page)
    await page.click("#sign-in")
    await page.click(f"button[value={user}]")  # the issuer's page of demo users
    await page.wait_for_url(f"{portal_url}/")
    return page


@contextlib.asynccontextmanager
async def _serve(app: FastAPI, port: int) -> AsyncIterator[str]:
    """The portal served on ``port`` (it has no broker or database to wait for)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    try:
        await eventually(started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def screenshot(name: str, tmp_path: Path) -> Path:
    folder = os.environ.get("QUARTIER_SCREENSHOT_DIR")
    return Path(folder) / name if folder else tmp_path / name


async def test_the_portal_by_role(
    infra: Infrastructure, database_name: str, issuer: LocalIssuer, browser: Browser, tmp_path: Path
) -> None:
    actors_app = actors.app.build(settings_for(actors.settings.Settings, infra, f"{database_name}_a"))
    conferences_app = conferences.app.build(settings_for(conferences.settings.Settings, infra, f"{database_name}_c"))
    port = free_port()
    async with serving(actors_app) as actors_url, serving(conferences_app) as conferences_url:
        portal_app = build_portal(portal_settings(issuer, actors_url, conferences_url, port))
        coordinator = infra.auth_headers("coordinator")
        async with httpx.AsyncClient(headers=coordinator) as api:
            for name, districts, email in (
                ("Runder Tisch Frohnhausen", ["III"], "frohnhausen@runder-tisch.example.org"),
                ("Caritas Borbeck", ["IV"], "borbeck@caritas.example.org"),
                ("Bürgerverein Dellwig", ["IV", "III"], "dellwig@buergerverein.example.org"),
            ):
                body = actor_body(name=name, districts=districts, email=email)
                assert (await api.post(f"{actors_url}/actors", json=body)).status_code == 201
            created = await api.post(f"{conferences_url}/conferences", json=conference_body(district="IV"))
            assert created.status_code == 201, created.text
            draft = await api.post(f"{conferences_url}/conferences", json=conference_body(district="IV", draft=True))
            assert draft.status_code == 201, draft.text
        async with _serve(portal_app, port) as portal_url:
            await coordinator_walk(browser, portal_url, tmp_path)
            await notifications_down_walk(browser, portal_url, draft.json()["id"])
            await quarter_manager_walk(browser, portal_url)


async def coordinator_walk(browser: Browser, portal_url: str, tmp_path: Path) -> None:
    page = await sign_in(browser, portal_url, "demo-coordinator")
    assert await page.get_attribute("html", "lang") == "de"
    assert await page.locator("section.district").count() == 9
    iv = page.locator("section[data-district=IV]")
    assert "Integrationskonferenz Borbeck" in await iv.inner_text()
    assert "Wohlfahrtsverband" in await iv.inner_text()  # actors by kind, in German
    await assert_accessible(page)
    await page.screenshot(path=str(screenshot("portal-start.png", tmp_path)), full_page=True)

    # English, and it stays English on the next page
    await page.click("a[hreflang=en]")
    assert await page.get_attribute("html", "lang") == "en"
    await page.click("nav[aria-label=Portal] >> text=CSV import")
    assert await page.get_attribute("html", "lang") == "en"
    await page.click("a[hreflang=de]")

    # the import: preview every row with its errors, then only the valid rows
    upload: FilePayload = {"name": "akteure.csv", "mimeType": "text/csv", "buffer": CSV_FILE}
    await page.set_input_files("#file", files=[upload])
    await page.click("button[value=preview]")
    rows = page.locator("#rows tbody tr")
    assert await rows.count() == 4
    assert [await r.get_attribute("data-status") for r in await rows.all()] == ["valid", "valid", "invalid", "invalid"]
    assert "Bezirke: Unbekannter Bezirk XII." in await rows.nth(2).inner_text()
    assert "E-Mail: Keine gültige E-Mail-Adresse." in await rows.nth(3).inner_text()  # in German, as the page
    assert "Stadtteilbüro Altendorf" in await rows.nth(0).inner_text()  # Windows-1252 read right
    await assert_accessible(page)
    await page.screenshot(path=str(screenshot("portal-import.png", tmp_path)), full_page=True)
    await page.click("#commit")
    statuses = [await r.get_attribute("data-status") for r in await page.locator("#rows tbody tr").all()]
    assert statuses == ["created", "created", "invalid", "invalid"]

    # the list shows them; a form error stands next to its field
    await page.goto(f"{portal_url}/actors?district=IV")
    names = await page.locator("#actors tbody th").all_inner_texts()
    assert "Stadtteilbüro Altendorf" in names and "Runder Tisch Frohnhausen" not in names
    await assert_accessible(page)
    await page.fill("#q", "altendorf")
    await page.click("button[type=submit] >> text=Anzeigen")
    assert await page.locator("#actors tbody th").all_inner_texts() == ["Stadtteilbüro Altendorf"]
    await page.goto(f"{portal_url}/actors/new")
    await page.fill("#name", "Neuer Verein")
    await page.fill("#email", "kein-at")
    await page.click("button[type=submit] >> text=Speichern")
    assert await page.locator("#email-error").is_visible()
    assert "Keine gültige E-Mail-Adresse." in await page.inner_text("#email-error")
    assert await page.get_attribute("#email", "aria-describedby") == "email-error"
    await assert_accessible(page)

    # edit: the form shows the consent record; a change is saved; then deactivate
    await page.goto(f"{portal_url}/actors?q=gerschede")
    await page.click("#actors tbody a")
    assert "erteilt" not in await page.locator("#consent-history").inner_text()  # "nein" in the file
    await page.check("#consent")
    await page.click("button[type=submit] >> text=Speichern")
    assert await page.locator("#done").is_visible()
    await page.goto(f"{portal_url}/actors?q=gerschede")
    assert "ja," in await page.locator("#actors tbody td").nth(3).inner_text()  # consent now given
    await page.click("#actors tbody button")  # Deaktivieren
    assert "deaktiviert" in await page.locator("#done").inner_text()
    await page.goto(f"{portal_url}/actors?q=gerschede")
    assert await page.locator("#no-actors").is_visible()

    # a post without the CSRF token: refused, nothing changed
    refused = await page.request.post(f"{portal_url}/actors/new", form={"name": "X", "email": "x@example.org"})
    assert refused.status == 403
    await page.context.close()


async def quarter_manager_walk(browser: Browser, portal_url: str) -> None:
    page = await sign_in(browser, portal_url, "demo-manager-iv")
    assert [await s.get_attribute("data-district") for s in await page.locator("section.district").all()] == ["IV"]
    await page.goto(f"{portal_url}/actors")
    rows = {await r.locator("th").inner_text(): r for r in await page.locator("#actors tbody tr").all()}
    assert "Runder Tisch Frohnhausen" not in rows  # district III only
    assert "Caritas Borbeck" in rows and await rows["Caritas Borbeck"].locator("text=Deaktivieren").count() == 1
    # in IV and III: listed, as the service lists it, but no buttons to change it
    assert await rows["Bürgerverein Dellwig"].locator("a, button").count() == 0
    await assert_accessible(page)
    # and asking for district III is refused by the service, shown as a message
    await page.goto(f"{portal_url}/actors?district=III")
    assert "Runder Tisch Frohnhausen" not in await page.content()
    await page.context.close()


async def test_a_service_that_is_down_gives_a_banner(issuer: LocalIssuer, browser: Browser) -> None:
    port = free_port()
    down = f"http://127.0.0.1:{free_port()}"
    app = build_portal(portal_settings(issuer, down, down, port))
    async with _serve(app, port) as portal_url:
        page = await sign_in(browser, portal_url, "demo-coordinator")
        banner = page.locator("#message")
        assert await banner.is_visible()
        assert "nicht erreichbar" in await banner.inner_text()
        assert "Traceback" not in await page.content()
        await assert_accessible(page)


async def notifications_down_walk(browser: Browser, portal_url: str, draft_id: str) -> None:
    """A draft's page while notifications is down: a banner where the preview would be, and the
    rest of the page (publishing included) as always."""
    page = await sign_in(browser, portal_url, "demo-coordinator")
    await page.goto(f"{portal_url}/conferences/{draft_id}")
    assert "nicht erreichbar" in await page.inner_text("#preview-down")
    assert await page.locator("#publish").is_visible()
    await assert_accessible(page)
    await page.context.close()
