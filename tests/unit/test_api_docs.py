"""/docs from our own files: the page names only files that are there, and its CSP lets it load
nothing from another host."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from quartier_shared import api_docs


async def test_the_page_loads_only_files_the_service_serves() -> None:
    app = FastAPI(title="Quartier <test>", docs_url=None, redoc_url=None)
    api_docs.install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "Quartier &lt;test&gt;" in page.text  # the title is escaped
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self';" in policy
        assert "http" not in policy  # no other host
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert loaded and all(url.startswith("/docs/static/") for url in loaded), loaded
        for url in loaded:
            served = await client.get(url)
            assert served.status_code == 200 and served.content, url
    assert "swagger-ui-bundle.js" in " ".join(loaded) and "start.js" in " ".join(loaded)


def test_fastapis_cdn_pages_must_be_off() -> None:
    with pytest.raises(ValueError, match="CDN"):
        api_docs.install(FastAPI())


def test_no_vendored_file_names_another_host_to_load_from() -> None:
    """The start script and the page name no URL; the validator (another host) is off."""
    start = (api_docs.FILES / "start.js").read_text()
    assert "validatorUrl: null" in start
    assert not re.search(r"https?://", start)
