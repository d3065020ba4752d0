"""The one-time notice (GDPR Art. 14) to a person whose consent staff recorded on their behalf.

Contract of ``render_privacy_notice``: in the recipient's language (German or English), plain
text and HTML (every value escaped there), it says
- what is stored: name, e-mail address, districts, kind and language;
- why: invitations to the district's integration conferences and meetings of the city's
  integration network;
- by whom: the city, as the sender (``SMTP_FROM_NAME``), never the staff member who recorded it;
- how long and their rights, in one sentence, with the privacy notice (``PRIVACY_URL``);
and it carries the unsubscribe headers and footer of every mail to an actor (``footer``). Its
Message-ID is derived from the actor id, so a mail sent again after a crash carries the same one.
The unsubscribe link is personal: filled in per mail, never logged.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Final

from quartier_shared.events import Language

from .domain import ID_NAMESPACE, NOTICE
from .footer import Footer
from .mail import (
    CRLF,
    TEMPLATES,
    OutgoingMail,
    Recipient,
    Sender,
    _address_header,
    _header,
    _one_line,
    _qp,
    _text_part_headers,
    message_id,
)

WORDING: Final[dict[Language, dict[str, str]]] = {
    "de": {
        "subject": "Ihre Daten im Integrationsnetzwerk: Information nach Art. 14 DSGVO",
        "intro": "{sender} hat Ihre Einwilligung in E-Mail-Benachrichtigungen für Sie eingetragen. "
        "Darüber informieren wir Sie einmalig (Art. 14 DSGVO).",
        "what": "Gespeichert werden Ihr Name, Ihre E-Mail-Adresse, Ihre Stadtbezirke, die Art Ihrer "
        "Organisation und Ihre Sprache.",
        "why": "Wir nutzen sie, um Sie zu den Integrationskonferenzen Ihres Stadtbezirks und zu Treffen "
        "des städtischen Integrationsnetzwerks einzuladen.",
        "who": "Verantwortlich ist die Stadt: {sender}.",
        "rights": "Wir speichern die Daten, bis Sie widersprechen oder die Löschung verlangen; Sie haben "
        "das Recht auf Auskunft, Berichtigung, Löschung und Widerruf, mehr in den Datenschutzhinweisen: {link}",
    },
    "en": {
        "subject": "Your data in the integration network: information under Art. 14 GDPR",
        "intro": "{sender} recorded your consent to e-mail notifications on your behalf. We tell you "
        "about it once (Art. 14 GDPR).",
        "what": "What is stored: your name, your e-mail address, your districts, the kind of your "
        "organisation and your language.",
        "why": "We use it to invite you to the integration conferences of your district and to meetings "
        "of the city's integration network.",
        "who": "The controller is the city: {sender}.",
        "rights": "We keep the data until you object or ask for its erasure; you have the right to access, "
        "rectification, erasure and withdrawal, more in the privacy notice: {link}",
    },
}


def notice_message_id(actor_id: str, domain: str) -> str:
    """Derived from the actor id (through a UUID, so any id fits a Message-ID): one per actor."""
    return message_id(str(uuid.uuid5(ID_NAMESPACE, f"{NOTICE}:{actor_id}")), NOTICE, domain)


def render_privacy_notice(
    *, recipient: Recipient, sender: Sender, msg_id: str, privacy_url: str, footer: Footer
) -> OutgoingMail:
    language = recipient.language
    t, w = TEMPLATES[language], WORDING[language]
    paragraphs = (
        t["greeting"].format(name=recipient.name),
        w["intro"].format(sender=sender.name),
        w["what"],
        w["why"],
        w["who"].format(sender=sender.name),
    )
    rights_before, rights_after = w["rights"].split("{link}")
    plain = (
        "\n\n".join([*paragraphs, w["rights"].format(link=privacy_url), f"{t['closing']}\n{sender.name}"])
        + "\n"
        + footer.plain(language)
    )
    e = html.escape
    html_body = (
        f'<!DOCTYPE html>\n<html lang="{language}">\n<head><meta charset="utf-8">'
        f"<title>{e(w['subject'])}</title></head>\n<body>\n"
        + "\n".join(f"<p>{e(p)}</p>" for p in paragraphs)
        + f'\n<p>{e(rights_before)}<a href="{e(privacy_url)}">{e(privacy_url)}</a>{e(rights_after)}</p>\n'
        f"<p>{e(t['closing'])}<br>\n{e(sender.name)}</p>\n{footer.html(language)}</body>\n</html>\n"
    )
    alternative = f"=_alt_{uuid.uuid4().hex}"
    text = "".join(
        [
            "MIME-Version: 1.0" + CRLF,
            _address_header("From", sender.name, sender.email),
            _header("Subject", _one_line(w["subject"])),
            _address_header("To", recipient.name, recipient.email),
            f"Date: {format_datetime(datetime.now(UTC))}{CRLF}",
            f"Message-ID: {msg_id}{CRLF}",
            footer.headers(),
            f"Content-Language: {language}{CRLF}",
            f'Content-Type: multipart/alternative; boundary="{alternative}"{CRLF}',
            CRLF,
            f"--{alternative}{CRLF}",
            _text_part_headers("plain"),
            _qp(plain),
            CRLF,
            f"--{alternative}{CRLF}",
            _text_part_headers("html"),
            _qp(html_body),
            CRLF,
            f"--{alternative}--{CRLF}",
        ]
    )
    return OutgoingMail(sender=sender.email, recipient=recipient.email, message_id=msg_id, data=text.encode("utf-8"))
