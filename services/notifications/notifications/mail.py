"""The invitation e-mail: plain text and HTML in the recipient's language, plus the ``.ics``.

Wording lives here as two static template tables; dates are spelled out from our own month and
weekday names so the output does not depend on the host's locale settings.
"""

from __future__ import annotations

import email.header
import email.policy
import email.quoprimime
import email.utils
import html
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from quartier_shared.events import ConferenceDetails, Language

from .calendar import CalendarTemplate, calendar_template


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str
    language: Language


@dataclass(frozen=True)
class Sender:
    """The city's coordination office, which is also the calendar ORGANIZER."""

    name: str
    email: str


DASH: Final = "\u2013"  # en dash, as German and English typography want for ranges

WEEKDAYS: Final[dict[Language, tuple[str, ...]]] = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS: Final[dict[Language, tuple[str, ...]]] = {
    "de": (
        "Januar", "Februar", "März", "April", "Mai", "Juni",
        "Juli", "August", "September", "Oktober", "November", "Dezember",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip

# Filled with str.format on raw text; the HTML body escapes every value it inserts, labels included.
TEMPLATES: Final[dict[Language, dict[str, str]]] = {
    "de": {
        "subject": "Einladung: {title} am {short_date}",
        "long_date": "{weekday}, {day}. {month} {year}",
        "time_same_day": "{start}" + DASH + "{end} Uhr ({zone})",
        "time_multi_day": "Beginn {start} Uhr, Ende {end} Uhr ({zone})",
        "greeting": "Guten Tag {name},",
        "intro": "wir laden Sie herzlich zur folgenden Integrationskonferenz ein.",
        "label_title": "Veranstaltung",
        "label_district": "Stadtbezirk",
        "label_date": "Datum",
        "label_time": "Uhrzeit",
        "label_place": "Ort",
        "label_agenda": "Tagesordnung",
        "no_agenda": "Die Tagesordnung folgt.",
        "calendar_hint": "Die Einladung liegt als Kalendereintrag (invitation.ics) bei.",
        "closing": "Mit freundlichen Grüßen",
    },
    "en": {
        "subject": "Invitation: {title} on {short_date}",
        "long_date": "{weekday}, {day} {month} {year}",
        "time_same_day": "{start}" + DASH + "{end} ({zone})",
        "time_multi_day": "starts {start}, ends {end} ({zone})",
        "greeting": "Dear {name},",
        "intro": "we cordially invite you to the following integration conference.",
        "label_title": "Event",
        "label_district": "District",
        "label_date": "Date",
        "label_time": "Time",
        "label_place": "Place",
        "label_agenda": "Agenda",
        "no_agenda": "The agenda will follow.",
        "calendar_hint": "The invitation is attached as a calendar entry (invitation.ics).",
        "closing": "Kind regards",
    },
}

# Characters that would break the "<left@right>" shape of a Message-ID.
_MSG_ID_FORBIDDEN: Final = re.compile(r"[\s<>@\"\\()\[\],;:]")


def message_id(invitation_id: str, kind: str, domain: str) -> str:
    """Stable per invitation and kind, so a resend carries the same id and receivers can dedupe."""
    for part in (invitation_id, kind):
        if not part or _MSG_ID_FORBIDDEN.search(part):
            raise ValueError(f"{part!r} cannot be part of a Message-ID")
    return f"<{kind}-{invitation_id}@{domain}>"


def _one_line(text: str) -> str:
    """Header values must not contain line breaks (header injection); collapse all whitespace."""
    return " ".join(text.split())


def _long_date(day: datetime, language: Language) -> str:
    return TEMPLATES[language]["long_date"].format(
        weekday=WEEKDAYS[language][day.weekday()],
        day=day.day,
        month=MONTHS[language][day.month - 1],
        year=day.year,
    )


def _short_date(day: datetime, language: Language) -> str:
    if language == "de":
        return f"{day:%d.%m.%Y}"
    return f"{day.day} {MONTHS[language][day.month - 1]} {day.year}"


@dataclass(frozen=True)
class _Facts:
    """Everything the body shows, as plain (unescaped) text in one language."""

    greeting: str
    title: str
    district: str
    date: str
    time: str
    place: str
    agenda: tuple[str, ...]


def _facts(conference: ConferenceDetails, recipient: Recipient) -> _Facts:
    t = TEMPLATES[recipient.language]
    tz = ZoneInfo(conference.timezone)
    starts_at = conference.starts_at.astimezone(tz)
    ends_at = conference.ends_at.astimezone(tz)
    zone = f"{starts_at.tzname()}, {conference.timezone}"
    if starts_at.date() == ends_at.date():
        date_text = _long_date(starts_at, recipient.language)
        time_text = t["time_same_day"].format(start=f"{starts_at:%H:%M}", end=f"{ends_at:%H:%M}", zone=zone)
    else:
        date_text = f"{_long_date(starts_at, recipient.language)} {DASH} {_long_date(ends_at, recipient.language)}"
        time_text = t["time_multi_day"].format(start=f"{starts_at:%H:%M}", end=f"{ends_at:%H:%M}", zone=zone)
    return _Facts(
        greeting=t["greeting"].format(name=recipient.name),
        title=conference.title,
        district=conference.district_name,
        date=date_text,
        time=time_text,
        place=f"{conference.venue.name}, {conference.venue.address}",
        agenda=tuple(conference.agenda),
    )


def _fields(facts: _Facts, t: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (t["label_title"], facts.title),
        (t["label_district"], facts.district),
        (t["label_date"], facts.date),
        (t["label_time"], facts.time),
        (t["label_place"], facts.place),
    ]


def _plain_body(facts: _Facts, t: dict[str, str], sender: Sender) -> str:
    lines = [facts.greeting, "", t["intro"], ""]
    lines += [f"{label}: {value}" for label, value in _fields(facts, t)]
    lines += ["", f"{t['label_agenda']}:"]
    if facts.agenda:
        lines += [f"{number}. {item}" for number, item in enumerate(facts.agenda, 1)]
    else:
        lines.append(t["no_agenda"])
    lines += ["", t["calendar_hint"], "", t["closing"], sender.name, ""]
    return "\n".join(lines)


def _html_body(facts: _Facts, t: dict[str, str], sender: Sender, language: Language) -> str:
    e = html.escape
    rows = "\n".join(
        f'<tr><th scope="row" style="text-align:left;padding-right:1em">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in _fields(facts, t)
    )
    if facts.agenda:
        agenda = "<ol>\n" + "\n".join(f"<li>{e(item)}</li>" for item in facts.agenda) + "\n</ol>"
    else:
        agenda = f"<p>{e(t['no_agenda'])}</p>"
    return (
        f'<!DOCTYPE html>\n<html lang="{language}">\n<head><meta charset="utf-8">'
        f"<title>{e(facts.title)}</title></head>\n<body>\n"
        f"<p>{e(facts.greeting)}</p>\n<p>{e(t['intro'])}</p>\n"
        f"<table>\n{rows}\n</table>\n"
        f"<h2>{e(t['label_agenda'])}</h2>\n{agenda}\n"
        f"<p>{e(t['calendar_hint'])}</p>\n"
        f"<p>{e(t['closing'])}<br>\n{e(sender.name)}</p>\n</body>\n</html>\n"
    )


@dataclass(frozen=True)
class OutgoingMail:
    """A rendered mail: the SMTP envelope and the message exactly as it goes over the wire."""

    sender: str
    recipient: str
    message_id: str
    data: bytes

    def as_bytes(self) -> bytes:
        return self.data


CRLF: Final = "\r\n"


def _qp(text: str) -> str:
    """Quoted-printable keeps umlauts 7-bit safe, so no relay needs 8BITMIME. It encodes line by
    line, so parts encoded apart and joined with CRLF equal the whole encoded at once."""
    # quoprimime works on octets held in a str, as the email package feeds it.
    return email.quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), eol=CRLF)


def _header(name: str, value: str) -> str:
    """One header, RFC 2047-encoded where it is not ASCII and folded to the line length."""
    policy = email.policy.SMTP
    folded: str = policy.header_factory(name, value).fold(policy=policy)
    return folded


def _address_header(name: str, display_name: str, address: str) -> str:
    """From or To. An ASCII name (the common case) is quoted as needed and folded the cheap
    compat32 way; any other goes through the email policy, which makes RFC 2047 encoded words
    that parsers read back exactly."""
    display_name = _one_line(display_name)
    if not address.isascii():  # internationalised: the header goes out as UTF-8, under SMTPUTF8
        return f'{name}: "{email.utils.quote(display_name)}" <{address}>{CRLF}'
    value = formataddr((display_name, address))
    if not display_name.isascii():
        return _header(name, value)
    return f"{name}: {email.header.Header(value, header_name=name).encode(linesep=CRLF)}{CRLF}"


@dataclass(frozen=True)
class _Template:
    """Everything in an invitation that is the same for every recipient of one conference in one
    language; per recipient only the greeting, the addressee and the ids are filled in."""

    headers: str  # From and Subject
    plain_after_greeting: str
    html_before_greeting: str
    html_after_greeting: str
    calendar: CalendarTemplate
    greeting: str  # format string with {name}
    language: Language


@lru_cache(maxsize=64)
def _template(conference_json: str, language: Language, sender: Sender, domain: str) -> _Template:
    """Cached per conference (its full JSON, so any change makes a new entry), language and sender."""
    conference = ConferenceDetails.model_validate_json(conference_json)
    t = TEMPLATES[language]
    # The bodies are split around this marker. It is made afresh for each template, so no value of
    # a conference (which comes from outside) can hold it and break every mail of the conference.
    marker = f"greeting-{uuid.uuid4().hex}"
    facts = replace(_facts(conference, Recipient(name="", email="", language=language)), greeting=marker)
    tz = ZoneInfo(conference.timezone)
    subject = t["subject"].format(
        title=conference.title, short_date=_short_date(conference.starts_at.astimezone(tz), language)
    )
    plain = _plain_body(facts, t, sender)
    html_body = _html_body(facts, t, sender, language)
    html_before, html_after = html_body.split(html.escape(marker))
    return _Template(
        headers=_address_header("From", sender.name, sender.email) + _header("Subject", _one_line(subject)),
        plain_after_greeting=plain.split(marker)[1],
        html_before_greeting=html_before,
        html_after_greeting=html_after,
        calendar=calendar_template(
            conference=conference,
            organizer_email=sender.email,
            organizer_name=sender.name,
            uid_domain=domain,
            method="REQUEST",
        ),
        greeting=t["greeting"],
        language=language,
    )


def render_invitation(
    *,
    conference: ConferenceDetails,
    recipient: Recipient,
    sender: Sender,
    invitation_id: str,
    domain: str,
) -> OutgoingMail:
    """The complete invitation mail, ready for SMTP; ``domain`` also scopes Message-ID and UID.

    Structure: multipart/mixed of (multipart/alternative of text and HTML) and the ``.ics``.
    """
    t = _template(conference.model_dump_json(), recipient.language, sender, domain)
    greeting = t.greeting.format(name=recipient.name)
    msg_id = message_id(invitation_id, "invitation", domain)
    ics = t.calendar.for_attendee(recipient.email, recipient.name).decode("utf-8")
    # "=_" cannot occur in quoted-printable text ("=" is always followed by hex digits or a line
    # break), so a boundary starting with it never collides with a body.
    mixed, alternative = f"=_mixed_{uuid.uuid4().hex}", f"=_alt_{uuid.uuid4().hex}"
    text = "".join(
        [
            "MIME-Version: 1.0" + CRLF,
            t.headers,
            _address_header("To", recipient.name, recipient.email),
            f"Date: {format_datetime(datetime.now(UTC))}{CRLF}",
            f"Message-ID: {msg_id}{CRLF}",
            f"Content-Language: {t.language}{CRLF}",
            f'Content-Type: multipart/mixed; boundary="{mixed}"{CRLF}',
            CRLF,
            f"--{mixed}{CRLF}",
            f'Content-Type: multipart/alternative; boundary="{alternative}"{CRLF}',
            CRLF,
            f"--{alternative}{CRLF}",
            _text_part_headers("plain"),
            _qp(greeting + t.plain_after_greeting),
            CRLF,
            f"--{alternative}{CRLF}",
            _text_part_headers("html"),
            _qp(t.html_before_greeting + html.escape(greeting) + t.html_after_greeting),
            CRLF,
            f"--{alternative}--{CRLF}",
            f"--{mixed}{CRLF}",
            _text_part_headers(
                "calendar", '; method="REQUEST"', f'Content-Disposition: attachment; filename="invitation.ics"{CRLF}'
            ),
            _qp(ics),
            CRLF,
            f"--{mixed}--{CRLF}",
        ]
    )
    # ASCII throughout, except an internationalised address (sent with SMTPUTF8, see smtp.py).
    return OutgoingMail(sender=sender.email, recipient=recipient.email, message_id=msg_id, data=text.encode("utf-8"))


def _text_part_headers(subtype: str, params: str = "", more: str = "") -> str:
    """The headers of a UTF-8 text part and the blank line that ends them."""
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{params}{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{more}{CRLF}"
    )
