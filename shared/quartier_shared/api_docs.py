"""Every service's API documentation at ``/docs``: Swagger UI served from our own files.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, so in a city network without internet access
it is a blank page. ``install(app)`` serves instead:

- ``GET /docs``: a page that loads the vendored Swagger UI (``swagger_ui/``, pinned like every
  other dependency, see its README.md) from ``/docs/static`` and shows ``app.openapi_url``.
- ``/docs/static/…``: those files.

The page carries a Content-Security-Policy that lets it load and ask nothing but this host
(scripts and styles from files only, nothing inline; no validator, which would send the document
elsewhere). Open without a token, as ``/openapi.json`` is: neither holds personal data. No ReDoc:
one documentation page is enough, and the CDN one was as blank offline.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
STATIC_PATH = "/docs/static"
FILES = Path(str(resources.files(__package__ or "quartier_shared") / "swagger_ui"))

# Swagger UI embeds icons as data: URLs; everything else is this host's (no inline script or style).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – API</title>
<link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
<link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/start.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its files; the app must be made with ``docs_url=None, redoc_url=None``
    (FastAPI's own pages would load from a CDN)."""
    if app.docs_url or app.redoc_url:
        raise ValueError("make the app with docs_url=None and redoc_url=None: their pages load from a CDN")
    page = _PAGE.format(
        title=html.escape(app.title),
        static=STATIC_PATH,
        openapi_url=html.escape(app.openapi_url or "/openapi.json"),
    )

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=HEADERS)

    app.mount(STATIC_PATH, StaticFiles(directory=FILES), name="api-docs")
