"""The public pages' foundation: server-rendered HTML that every service with pages reuses (the
answer page now; the unsubscribe page and the staff portal later).

The contract:
- ``Pages(settings, city=..., package=...)`` renders Jinja2 templates with autoescape always on.
  Templates are looked up in the service's package first (``<package>/templates``), then here
  (``base.html``, ``message.html``). A service template extends ``base.html``: the city's look with
  the KERN UX design system, a skip link, the language switch and the footer with the city's
  imprint, privacy notice and accessibility statement (``IMPRINT_URL``, ``PRIVACY_URL``,
  ``ACCESSIBILITY_URL``).
- Languages: German first, then English. ``?lang=de|en`` picks one (kept in ``language_cookie``,
  if the service names one, and asked next); without it the visitor's ``Accept-Language``; else
  German. Translations are the ``.po`` files under ``translations/``
  (here, and the service's own, which win), compiled with Babel when ``Pages`` is made, so no
  build step and no ``.mo`` files. Dates and times are formatted by Babel in the conference's
  time zone and the visitor's language: ``date(value, timezone)`` and ``time(value, timezone)``.
- Every page answer carries ``SECURITY_HEADERS``: a Content-Security-Policy that lets the page
  load nothing but our own files (no inline scripts or styles, no other host; form posts only to
  us; no framing), ``Referrer-Policy: same-origin`` (a personal link in the address bar never
  leaves as a Referer), ``nosniff`` and ``Cache-Control: no-store`` (pages may be personal).
- ``install(app)`` serves ``static/`` (KERN UX's CSS and fonts, vendored from the npm package
  ``@kern-ux/native``, EUPL-1.2, see ``static/kern/LICENSE.md``) at ``/static``.
- No page needs JavaScript; every form field has a label, and errors sit next to their field.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict

LANGUAGES = ("de", "en")  # the first is the default
LANGUAGE_NAMES = {"de": "Deutsch", "en": "English"}
HERE = Path(str(resources.files(__name__)))
STATIC_PATH = "/static"

# data: only for the icons KERN's stylesheet embeds; nothing is fetched from another host.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; script-src 'none'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class PageSettings(BaseSettings):
    """What a service with pages reads from its environment besides its ``ServiceSettings``."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # Where visitors reach the pages (links in mails, the Origin a form post must come from);
    # None: the service's own local address.
    public_base_url: str | None = None
    imprint_url: str = "https://www.essen.de/impressum"
    privacy_url: str = "https://www.essen.de/datenschutz"
    accessibility_url: str = "https://www.essen.de/barrierefreiheit"


def load_translations(folder: Path, language: str) -> gettext.NullTranslations | None:
    """The ``.po`` catalogue of ``language`` under ``folder``, compiled in memory; None if absent."""
    po = folder / language / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return None
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def choose_language(request: Request) -> str:
    """``?lang=`` if it names one of ours, else the best of ``Accept-Language``, else German."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    header = request.headers.get("accept-language", "")
    preferred = [part.split(";")[0].strip().replace("-", "_") for part in header.split(",")[:20]]
    try:
        found = Locale.negotiate([p for p in preferred if p and p != "*"], list(LANGUAGES))
    except (ValueError, UnknownLocaleError):
        found = None
    return found.language if found is not None else LANGUAGES[0]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, public_base_url: str) -> bool:
    """For form posts: True unless the browser says the form came from another site. Browsers
    send ``Origin`` (else ``Referer``) with a post; it must be our public origin or the address
    the request came to. A client that sends neither (curl) is not a browser another site could
    have made post, and is let through."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    if claimed == "null":  # an opaque origin (a sandboxed frame, a data: URL): never ours
        return False
    return origin_of(claimed) in {origin_of(public_base_url), origin_of(str(request.base_url))}


class Pages:
    """Renders a service's pages in the visitor's language, with ``SECURITY_HEADERS``."""

    def __init__(
        self,
        settings: PageSettings,
        *,
        city: str,
        package: str | None = None,
        language_cookie: str | None = None,
        secure_cookie: bool = False,
        context: Callable[[Request, str], Mapping[str, Any]] | None = None,
    ) -> None:
        """``language_cookie``: the cookie that keeps a ``?lang=`` choice (a year), asked before
        ``Accept-Language``; ``context``: what every page of the service gets besides its own
        values, from the request and the page's language."""
        self.settings = settings
        self.city = city
        self.language_cookie = language_cookie
        self.secure_cookie = secure_cookie
        self.base_context = context
        own = Path(str(resources.files(package))) if package else None
        template_dirs = [d for d in (own and own / "templates", HERE / "templates") if d]
        self.translations = {language: _catalogue(language, own) for language in LANGUAGES}
        self.environments = {language: self._environment(language, template_dirs) for language in LANGUAGES}

    def _environment(self, language: str, template_dirs: list[Path]) -> Environment:
        env = Environment(
            loader=ChoiceLoader([FileSystemLoader(d) for d in template_dirs]),
            autoescape=True,  # every value is escaped, whatever the template's file name
            undefined=StrictUndefined,  # a misspelt variable fails the test, not the visitor silently
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.install_gettext_translations(self.translations[language], newstyle=True)  # type: ignore[attr-defined]
        env.globals.update(date=partial(_date, language), time=partial(_time, language))
        return env

    def gettext(self, language: str) -> Callable[[str], str]:
        """The translation function of ``language``, for texts made outside templates."""
        return self.translations[language].gettext

    def language(self, request: Request) -> str:
        """``?lang=``, else the one kept in ``language_cookie`` (if any), else ``choose_language``."""
        asked = request.query_params.get("lang")
        if asked in LANGUAGES:
            return asked
        kept = request.cookies.get(self.language_cookie) if self.language_cookie else None
        return kept if kept in LANGUAGES else choose_language(request)

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        language: str | None = None,
    ) -> HTMLResponse:
        language = language or self.language(request)
        page = self.environments[language].get_template(template)
        html = page.render(
            {
                "lang": language,
                "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
                "city": self.city,
                "path": request.url.path,
                "static": STATIC_PATH,
                "imprint_url": self.settings.imprint_url,
                "privacy_url": self.settings.privacy_url,
                "accessibility_url": self.settings.accessibility_url,
                **(self.base_context(request, language) if self.base_context else {}),
                **(context or {}),
            }
        )
        headers = {**SECURITY_HEADERS, "Content-Language": language, "Vary": "Accept-Language"}
        response = HTMLResponse(html, status_code=status_code, headers=headers)
        if self.language_cookie and request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(
                self.language_cookie, language, max_age=365 * 86400, samesite="lax", secure=self.secure_cookie
            )
        return response


def _catalogue(language: str, own: Path | None) -> gettext.NullTranslations:
    """The shared catalogue of ``language`` behind the service's own, whose texts win."""
    translations = load_translations(HERE / "translations", language) or gettext.NullTranslations()
    service = load_translations(own / "translations", language) if own else None
    if service is None:
        return translations
    service.add_fallback(translations)
    return service


def _date(language: str, value: datetime, timezone: str) -> str:
    """``Donnerstag, 4. März 2027`` / ``Thursday, March 4, 2027``, the day it is in ``timezone``."""
    return format_date(value.astimezone(ZoneInfo(timezone)).date(), "full", locale=language)


def _time(language: str, value: datetime, timezone: str) -> str:
    """``17:00`` / ``5:00 PM``, the hour it is in ``timezone``."""
    return format_time(value, "short", tzinfo=ZoneInfo(timezone), locale=language)


def install(app: FastAPI) -> None:
    """Serve the shared static files (KERN UX, our few styles) at ``/static``."""
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="static")
