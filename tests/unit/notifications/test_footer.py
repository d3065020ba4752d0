"""The unsubscribe headers (RFC 8058) and the visible footer of every mail to an actor."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from email.message import EmailMessage

import pytest

from notifications.domain import Reply
from notifications.footer import Footer
from notifications.mail import render_confirmation
from quartier_shared import links
from quartier_shared.events import Language
from tests.unit.notifications.fakes import FOOTER, LINK_VERIFY_KEY, LINKS, POLICY, START
from tests.unit.notifications.test_mail import DOMAIN, KINDS, RECIPIENTS, SENDER, body, conference, render_kind

WHY: dict[Language, str] = {
    "de": "weil die Stadt Sie als Akteur im Integrationsnetzwerk des Stadtbezirks Borbeck erfasst hat",
    "en": "because the city registered you as an actor of the integration network of district Borbeck",
}
UNSUBSCRIBE: dict[Language, str] = {"de": "Keine E-Mails mehr erhalten:", "en": "To receive no more e-mails:"}


def _confirmation(language: Language) -> EmailMessage:
    mail = render_confirmation(
        conference=conference(),
        recipient=RECIPIENTS[language],
        sender=SENDER,
        reply=Reply(answer="accepted", attendees=1, interpreter_language=None, step_free_access=False, children=0),
        invitation_id="inv-0815",
        message_id="<confirmation-x@essen.example.org>",
        domain=DOMAIN,
        link="https://quartier.essen.example.org/rsvp/a.b.c",
        footer=FOOTER,
    )
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("kind", [*KINDS, "confirmation"])
def test_every_mail_carries_one_click_unsubscribe_and_the_footer(kind: str, language: Language) -> None:
    message = _confirmation(language) if kind == "confirmation" else render_kind(kind, conference(), language)
    header = str(message["List-Unsubscribe"])
    assert re.fullmatch(r"<https://quartier\.essen\.example\.org/unsubscribe/[A-Za-z0-9._-]+>", header)
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    url = header[1:-1]
    # The link names the actor, for a year, and the answer page's key verifies it as unsubscribe only.
    claims = links.verify(url.rsplit("/", 1)[1], LINK_VERIFY_KEY, purpose=links.UNSUBSCRIBE, now=START)
    assert claims.actor_id == "actor-1"
    assert claims.expires_at == START + links.UNSUBSCRIBE_VALIDITY
    plain, html = body(message, "plain"), body(message, "html")
    for text in (plain, html):
        assert WHY[language] in text
        assert UNSUBSCRIBE[language] in text
        assert "integration@essen.example.org" in text
        assert "https://www.essen.example.org/datenschutz" in text
    assert f"{UNSUBSCRIBE[language]} {url}" in plain
    assert f'<a href="{url}">' in html
    assert html.index("<footer") < html.index("</body>")


def test_hostile_district_names_are_escaped_and_kept_on_one_line() -> None:
    footer = Footer(
        unsubscribe_url=FOOTER.unsubscribe_url,
        privacy_url="https://example.org/datenschutz?a=1&b=2",
        contact="integration@essen.example.org",
        district='<script>alert("x")</script>\r\nBcc: x@example.org',
    )
    html = footer.html("de")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "datenschutz?a=1&amp;b=2" in html
    assert "\r" not in footer.plain("de").replace("\n", "") and "Bcc: x@example.org" in footer.plain("de")
    assert footer.headers().count("\r\n") == 2


@pytest.mark.parametrize(
    "url", ["https://x.example/unsubscribe/a\r\nBcc: y@example.org", "javascript:alert(1)", "https://x/a>b"]
)
def test_a_url_that_would_break_the_header_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Footer(unsubscribe_url=url, privacy_url="https://x", contact="a@b", district="Borbeck").headers()


def test_the_unsubscribe_link_runs_a_year_from_the_mail() -> None:
    url = POLICY.footer("actor-9", "Borbeck", START).unsubscribe_url
    token = url.removeprefix(LINKS.base_url + "/unsubscribe/")
    assert links.verify(token, LINK_VERIFY_KEY, purpose=links.UNSUBSCRIBE, now=START + timedelta(days=364))
    with pytest.raises(links.ExpiredLink):
        links.verify(token, LINK_VERIFY_KEY, purpose=links.UNSUBSCRIBE, now=START + timedelta(days=365))
