"""The invitation e-mail: plain text and HTML in the recipient's language, plus the ``.ics``.

Wording lives here as two static template tables; dates are spelled out from our own month and
weekday names so the output does not depend on the host's locale settings.
"""

from __future__ import annotations

import email.policy
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Final
from zoneinfo import ZoneInfo

from quartier_shared.events import ConferenceDetails, Language

from .calendar import invitation_calendar


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


def render_invitation(
    *,
    conference: ConferenceDetails,
    recipient: Recipient,
    sender: Sender,
    invitation_id: str,
    domain: str,
) -> EmailMessage:
    """The complete invitation mail, ready for SMTP; ``domain`` also scopes Message-ID and UID."""
    t = TEMPLATES[recipient.language]
    facts = _facts(conference, recipient)
    tz = ZoneInfo(conference.timezone)

    # SMTP policy: CRLF line ends, which the .ics needs anyway (RFC 5545 content lines).
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((_one_line(sender.name), sender.email))
    msg["To"] = formataddr((_one_line(recipient.name), recipient.email))
    msg["Subject"] = _one_line(
        t["subject"].format(
            title=conference.title,
            short_date=_short_date(conference.starts_at.astimezone(tz), recipient.language),
        )
    )
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id(invitation_id, "invitation", domain)
    msg["Content-Language"] = recipient.language

    # Quoted-printable keeps umlauts 7-bit safe, so no relay needs 8BITMIME.
    msg.set_content(_plain_body(facts, t, sender), charset="utf-8", cte="quoted-printable")
    msg.add_alternative(
        _html_body(facts, t, sender, recipient.language),
        subtype="html",
        charset="utf-8",
        cte="quoted-printable",
    )
    ics = invitation_calendar(
        conference=conference,
        organizer_email=sender.email,
        organizer_name=sender.name,
        attendee_email=recipient.email,
        attendee_name=recipient.name,
        uid_domain=domain,
        method="REQUEST",
    )
    msg.add_attachment(
        ics.decode("utf-8"),
        subtype="calendar",
        charset="utf-8",
        cte="quoted-printable",
        params={"method": "REQUEST"},
        filename="invitation.ics",
    )
    # EmailMessage stamps MIME-Version on every part it creates; only the top level needs it.
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]
    return msg
