"""The public pages' foundation (quartier_shared.web) and the answer page's texts: the visitor's
language, the origin check of form posts, German for every text, escaping, and the vendored
KERN UX files the pages link."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from pydantic import ValidationError
from starlette.requests import Request

from conferences.pages import FIELD_ERRORS, AnswerForm
from portal.web import MESSAGE_HEADINGS
from quartier_shared.web import HERE, SECURITY_HEADERS, Pages, PageSettings, choose_language, same_origin

CONFERENCES = Path(str(resources.files("conferences")))


def request(query: str = "", headers: dict[str, str] | None = None, path: str = "/rsvp/x") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("127.0.0.1", 8002),
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1:8002"), *raw],
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("", "", "de"),
        ("", "en-GB,en;q=0.9,de;q=0.5", "en"),
        ("", "fr-FR,fr;q=0.9", "de"),
        ("", "fr, en;q=0.5", "en"),
        ("lang=de", "en", "de"),
        ("lang=en", "de", "en"),
        ("lang=xx", "en", "en"),
        ("", "garbage;;;,,q=", "de"),
    ],
)
def test_the_language_is_asked_for_then_accepted_then_german(query: str, accept: str, expected: str) -> None:
    assert choose_language(request(query, {"accept-language": accept} if accept else {})) == expected


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),  # no browser: nothing another site could have made post
        ({"origin": "http://127.0.0.1:8002"}, True),
        ({"origin": "https://quartier.example.org"}, True),
        ({"origin": "https://evil.example"}, False),
        ({"origin": "null"}, False),
        ({"referer": "https://quartier.example.org/rsvp/x?lang=de"}, True),
        ({"referer": "https://evil.example/page"}, False),
        ({"origin": "https://quartier.example.org.evil.example"}, False),
    ],
)
def test_a_form_post_must_come_from_our_own_origin(headers: dict[str, str], allowed: bool) -> None:
    assert same_origin(request(headers=headers), "https://quartier.example.org/") is allowed


def test_pages_escape_every_value_and_carry_the_security_headers() -> None:
    pages = Pages(PageSettings(imprint_url="https://city.example/impressum"), city="Essen")
    hostile = '<script>alert(1)</script>"'
    response = pages.render(request(), "message.html", {"heading": hostile, "text": hostile, "kind": "danger"})
    html = bytes(response.body).decode()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in html
    assert '<html lang="de">' in html and 'href="https://city.example/impressum">Impressum<' in html
    assert 'href="/rsvp/x?lang=en"' in html and "Zum Inhalt springen" in html
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "script-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-language"] == "de"


def test_dates_and_times_are_in_the_conferences_time_zone_and_the_visitors_language() -> None:
    pages = Pages(PageSettings(), city="Essen")
    winter = datetime(2027, 3, 4, 16, 0, tzinfo=UTC)  # 17:00 in Essen
    template = "{{ date(value, 'Europe/Berlin') }} {{ time(value, 'Europe/Berlin') }}"
    shown = {lang: env.from_string(template).render(value=winter) for lang, env in pages.environments.items()}
    assert shown == {"de": "Donnerstag, 4. März 2027 17:00", "en": "Thursday, March 4, 2027 5:00\u202fPM"}


def _msgids(path: Path) -> set[str]:
    method = "jinja2.ext:babel_extract" if path.suffix == ".html" else "python"
    options = {"extensions": "jinja2.ext.i18n"} if path.suffix == ".html" else {}
    found: set[str] = set()
    for _, message, _, _ in extract_from_file(method, str(path), options=options):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _german(folder: Path) -> dict[str, object]:
    with (folder / "de" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return {str(m.id if isinstance(m.id, str) else m.id[0]): m.string for m in read_po(po) if m.id}


def test_every_text_of_the_pages_is_in_german() -> None:
    shared = _german(HERE / "translations")
    own = _german(CONFERENCES / "translations")
    wanted_shared = set().union(*(_msgids(p) for p in (HERE / "templates").glob("*.html")))
    wanted_own = set(FIELD_ERRORS.values()) | _msgids(CONFERENCES / "pages.py")
    wanted_own |= _msgids(CONFERENCES / "unsubscribe_page.py")
    wanted_own |= set().union(*(_msgids(p) for p in (CONFERENCES / "templates").glob("*.html")))
    assert wanted_shared and wanted_own
    assert not {m for m in wanted_shared if not shared.get(m)}
    assert not {m for m in wanted_own if not own.get(m)}
    assert not set(own) - wanted_own - {""}, "texts in the catalogue that no page uses"


def test_the_pages_link_only_files_that_are_vendored() -> None:
    base = (HERE / "templates" / "base.html").read_text()
    linked = re.findall(r'href="\{\{ static \}\}/([^"]+)"', base)
    assert linked == ["kern/fonts/fira-sans.css", "kern/kern.min.css", "quartier.css"]
    assert all((HERE / "static" / f).is_file() for f in linked)
    fonts = (HERE / "static" / "kern" / "fonts" / "fira-sans.css").read_text()
    faces = re.findall(r'url\("\./([^"]+)"\)', fonts)
    assert faces and all((HERE / "static" / "kern" / "fonts" / f).is_file() for f in faces)
    assert "EUROPÄISCHE UNION PUBLIC LICENCE v. 1.2" in (HERE / "static" / "kern" / "LICENSE.md").read_text()
    kern = (HERE / "static" / "kern" / "kern.min.css").read_text()
    assert not re.findall(r"url\((?!\"?data:)", kern), "KERN's stylesheet must load nothing from elsewhere"


def test_the_answer_form_reads_what_a_browser_posts() -> None:
    minimal = AnswerForm.model_validate(
        {"answer": "declined", "attendees": "1", "representative": " ", "interpreter_language": "", "childcare": ""}
    )
    assert minimal.model_dump() == {
        "answer": "declined",
        "attendees": 1,
        "representative": None,
        "interpreter_language": None,
        "accessibility": False,  # an unticked checkbox is not sent at all
        "childcare": 0,
        "comment": None,
    }
    full = AnswerForm.model_validate(
        {"answer": "accepted", "attendees": "10", "accessibility": "yes", "comment": "Zwei Absätze.\r\n\r\nZweiter."}
    )
    assert full.accessibility is True and full.comment == "Zwei Absätze.\n\nZweiter."


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("answer", "yes"),
        ("attendees", "11"),
        ("attendees", "zwei"),
        ("representative", "x" * 201),
        ("representative", "Erika\u200bMustermann"),
        ("interpreter_language", "arabic"),
        ("interpreter_language", "AR"),
        ("accessibility", "on"),
        ("childcare", "-1"),
        ("comment", "Text\u202e"),
        ("comment", "x" * 501),
    ],
)
def test_the_answer_form_names_the_bad_field(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AnswerForm.model_validate({"answer": "accepted", "attendees": "2", field: value})
    assert {e["loc"][0] for e in refused.value.errors()} == {field}


def test_every_text_of_the_portal_is_in_german() -> None:
    portal = Path(str(resources.files("portal")))
    own = _german(portal / "translations")
    wanted = set().union(*(_msgids(p) for p in portal.glob("*.py")))
    wanted |= set().union(*(_msgids(p) for p in (portal / "templates").glob("*.html")))
    wanted |= set(MESSAGE_HEADINGS)  # translated where they are shown (web.Portal.message)
    assert wanted
    assert not {m for m in wanted if not own.get(m)}
    assert not set(own) - wanted - {""}, "texts in the catalogue that no page uses"
