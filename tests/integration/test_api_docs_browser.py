"""A service's /docs in a real browser that may reach nothing but the service: Swagger UI comes
from the service's own files and lists the operations (in a city network without internet
access, FastAPI's CDN page was blank)."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import Browser, Route

from actors.app import build
from actors.settings import Settings
from quartier.embedded import Infrastructure
from tests.helpers import settings_for
from tests.integration.test_answer_page_browser import serving


async def test_docs_list_the_operations_with_no_request_leaving_the_host(
    infra: Infrastructure, database_name: str, browser: Browser
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with serving(app) as base_url:
        own = urlsplit(base_url).netloc
        requested: list[str] = []
        elsewhere: list[str] = []
        problems: list[str] = []

        async def only_own_host(route: Route) -> None:
            url = route.request.url
            requested.append(url)
            if urlsplit(url).netloc == own:
                await route.continue_()
            else:
                elsewhere.append(url)
                await route.abort()

        context = await browser.new_context()
        await context.route("**/*", only_own_host)
        page = await context.new_page()
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        response = await page.goto(f"{base_url}/docs")
        assert response is not None and response.ok
        await page.locator(".opblock").first.wait_for()
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        # An operation opens with its parameters and responses (their styles are allowed by the CSP too).
        await page.locator(".opblock-summary").first.click()
        await page.locator(".opblock-body .responses-wrapper").first.wait_for()
        await context.close()

    assert "/actors" in {p.replace("\u200b", "") for p in paths}, paths
    assert len(paths) >= 10, paths  # every operation, not a stray one
    assert not elsewhere, f"requests to other hosts: {elsewhere}"
    assert f"{base_url}/docs/static/swagger-ui-bundle.js" in requested
    assert f"{base_url}/openapi.json" in requested
    assert not problems, problems  # a CSP violation or a script error would show here
