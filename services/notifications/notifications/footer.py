"""The unsubscribe footer and headers every mail to an actor carries.

Contract:
- ``Footer.headers()``: ``List-Unsubscribe: <{PUBLIC_BASE_URL}/unsubscribe/{token}>`` and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058), as header lines.
- ``Footer.plain(language)`` / ``Footer.html(language)``: a visible footer in the recipient's
  language (German or English): why the person gets the mail (registered by the city as an actor
  of the district's integration network), the unsubscribe link, who to ask (the sender's address)
  and the privacy notice (``PRIVACY_URL``). Every value is escaped in the HTML.
- The link is personal (it withdraws consent): filled in per mail, never logged.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Final

from quartier_shared.events import Language

CRLF: Final = "\r\n"

WORDING: Final[dict[Language, dict[str, str]]] = {
    "de": {
        "why": (
            "Sie erhalten diese E-Mail, weil die Stadt Sie als Akteur im Integrationsnetzwerk "
            "des Stadtbezirks {district} erfasst hat."
        ),
        "unsubscribe": "Keine E-Mails mehr erhalten: {link}",
        "ask": "Fragen beantwortet: {contact}",
        "privacy": "Datenschutzhinweise: {link}",
    },
    "en": {
        "why": (
            "You receive this e-mail because the city registered you as an actor of the integration "
            "network of district {district}."
        ),
        "unsubscribe": "To receive no more e-mails: {link}",
        "ask": "Questions are answered by: {contact}",
        "privacy": "Privacy notice: {link}",
    },
}


def _header_safe(url: str) -> str:
    """A URL as a header value: no line breaks, no angle brackets (which would end ``<…>``)."""
    if any(c in url for c in "\r\n<> ") or not url.startswith(("https://", "http://")):
        raise ValueError("not a URL that can go into List-Unsubscribe")
    return url


@dataclass(frozen=True)
class Footer:
    unsubscribe_url: str  # {PUBLIC_BASE_URL}/unsubscribe/{token}
    privacy_url: str
    contact: str  # who to ask: the sender's address
    district: str  # the district's name, of the conference the mail is about

    def headers(self) -> str:
        return (
            f"List-Unsubscribe: <{_header_safe(self.unsubscribe_url)}>{CRLF}"
            f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{CRLF}"
        )

    def _lines(self, language: Language) -> tuple[str, ...]:
        w = WORDING[language]
        return (
            w["why"].format(district=" ".join(self.district.split())),
            w["unsubscribe"].format(link=self.unsubscribe_url),
            w["ask"].format(contact=self.contact),
            w["privacy"].format(link=self.privacy_url),
        )

    def plain(self, language: Language) -> str:
        """The footer after the mail's text: a signature separator, then one line each."""
        return "\n-- \n" + "\n".join(self._lines(language)) + "\n"

    def html(self, language: Language) -> str:
        """The footer as an HTML ``<footer>``, the links clickable."""
        w, e = WORDING[language], html.escape

        def linked(wording: str, url: str) -> str:
            before, after = wording.split("{link}")
            return f'{e(before)}<a href="{e(url)}">{e(url)}</a>{e(after)}'

        why = w["why"].format(district=" ".join(self.district.split()))
        return (
            '<footer style="margin-top:2em;font-size:small;color:#555">\n<hr>\n'
            f"<p>{e(why)}</p>\n"
            f"<p>{linked(w['unsubscribe'], self.unsubscribe_url)}</p>\n"
            f"<p>{e(w['ask'].format(contact=self.contact))}</p>\n"
            f"<p>{linked(w['privacy'], self.privacy_url)}</p>\n</footer>\n"
        )
