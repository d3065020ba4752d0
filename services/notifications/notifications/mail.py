"""The invitation e-mail: plain text and HTML in the recipient's language, plus the ``.ics``; and
the confirmation of an answer (plain text and HTML).

Every mail carries the recipient's personal answer link (``personal_links``), in both parts and, in
an invitation, in the calendar's DESCRIPTION, and the unsubscribe headers and footer (``footer``).
The links are personal: they are filled in per mail, like the greeting, and never logged.

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
from .domain import ID_NAMESPACE, Reply
from .footer import Footer


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
        "answer_link": "Bitte antworten Sie über diesen Link: {link}",
        "answer_hint": (
            "Sie brauchen dafür kein Konto. Kann niemand von Ihnen selbst kommen, "
            "können Sie dort eine Vertretung nennen, die an Ihrer Stelle teilnimmt."
        ),
        "closing": "Mit freundlichen Grüßen",
        # the confirmation of an answer
        "confirmation_subject": "Ihre Antwort: {title} am {short_date}",
        "confirmation_intro": "vielen Dank, Ihre Antwort ist bei uns angekommen.",
        "label_answer": "Ihre Antwort",
        "accepted": "Zusage",
        "declined": "Absage",
        "tentative": "Zusage unter Vorbehalt",
        "people_1": "1 Person",
        "people_n": "{count} Personen",
        "interpreter": "Dolmetschen: {language}",
        "step_free": "stufenloser Zugang",
        "children_1": "Kinderbetreuung für 1 Kind",
        "children_n": "Kinderbetreuung für {count} Kinder",
        "change_link": "Ändern können Sie Ihre Antwort bis zum Ende der Konferenz über diesen Link: {link}",
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
        "answer_link": "Please answer through this link: {link}",
        "answer_hint": (
            "You need no account for it. If none of you can come yourselves, "
            "you can name a deputy there who takes part in your place."
        ),
        "closing": "Kind regards",
        # the confirmation of an answer
        "confirmation_subject": "Your answer: {title} on {short_date}",
        "confirmation_intro": "thank you, we have received your answer.",
        "label_answer": "Your answer",
        "accepted": "accepted",
        "declined": "declined",
        "tentative": "tentatively accepted",
        "people_1": "1 person",
        "people_n": "{count} people",
        "interpreter": "interpreting: {language}",
        "step_free": "step-free access",
        "children_1": "childcare for 1 child",
        "children_n": "childcare for {count} children",
        "change_link": "You can change your answer until the conference ends through this link: {link}",
    },
}

# Characters that would break the "<left@right>" shape of a Message-ID.
_MSG_ID_FORBIDDEN: Final = re.compile(r"[\s<>@\"\\()\[\],;:]")


def message_id(invitation_id: str, kind: str, domain: str) -> str:
    """Stable per invitation and kind, so a mail sent again after a crash carries the same id
    and receivers can dedupe."""
    for part in (invitation_id, kind):
        if not part or _MSG_ID_FORBIDDEN.search(part):
            raise ValueError(f"{part!r} cannot be part of a Message-ID")
    return f"<{kind}-{invitation_id}@{domain}>"


def invitation_message_id(invitation_id: str, resend: int, domain: str) -> str:
    """The invitation's Message-ID; each resend a coordinator asks for is a mail of its own."""
    return message_id(invitation_id + (f".resend-{resend}" if resend else ""), "invitation", domain)


def confirmation_message_id(answer_event_id: str, domain: str) -> str:
    """Derived from the InvitationAnswered's event id (through a UUID, as an event id from outside
    may hold anything): a replayed answer is the same mail."""
    return message_id(str(uuid.uuid5(ID_NAMESPACE, f"confirmation:{answer_event_id}")), "confirmation", domain)


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


def _plain_body(facts: _Facts, t: dict[str, str], sender: Sender, link: str) -> str:
    lines = [facts.greeting, "", t["intro"], ""]
    lines += [f"{label}: {value}" for label, value in _fields(facts, t)]
    lines += ["", f"{t['label_agenda']}:"]
    if facts.agenda:
        lines += [f"{number}. {item}" for number, item in enumerate(facts.agenda, 1)]
    else:
        lines.append(t["no_agenda"])
    lines += ["", t["answer_link"].format(link=link), t["answer_hint"]]
    lines += ["", t["calendar_hint"], "", t["closing"], sender.name, ""]
    return "\n".join(lines)


def _html_link_sentence(sentence: str, link: str) -> str:
    """A template sentence with ``{link}`` as an HTML paragraph: the text escaped, the link a link."""
    before, after = sentence.split("{link}")
    e = html.escape
    return f'<p>{e(before)}<a href="{e(link)}">{e(link)}</a>{e(after)}</p>'


def _html_body(facts: _Facts, t: dict[str, str], sender: Sender, language: Language, link: str) -> str:
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
        f"{_html_link_sentence(t['answer_link'], link)}\n<p>{e(t['answer_hint'])}</p>\n"
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


def _cut(text: str, *markers: str) -> tuple[str, ...]:
    """``text`` cut at each marker, in order: one piece more than there are markers. A marker
    named twice is cut at twice (the link is in an href and in its text). Markers are fresh, so no
    conference's values hold one."""
    pieces = []
    for marker in markers:
        before, text = text.split(marker, 1)
        pieces.append(before)
    return (*pieces, text)


def _fill(pieces: tuple[str, ...], *values: str) -> str:
    """The pieces of ``_cut`` with a value where each marker was."""
    return pieces[0] + "".join(value + piece for value, piece in zip(values, pieces[1:], strict=True))


@dataclass(frozen=True)
class _Template:
    """Everything in an invitation that is the same for every recipient of one conference in one
    language; per recipient only the greeting, the answer link, the addressee and the ids are
    filled in."""

    headers: str  # From and Subject
    plain: tuple[str, ...]  # the plain body cut where the greeting, the link and the footer go
    html: tuple[str, ...]  # the same for the HTML body
    calendar: CalendarTemplate
    greeting: str  # format string with {name}
    answer_link: str  # format string with {link}, for the calendar
    language: Language


@lru_cache(maxsize=64)
def _template(conference_json: str, language: Language, sender: Sender, domain: str) -> _Template:
    """Cached per conference (its full JSON, so any change makes a new entry), language and sender."""
    conference = ConferenceDetails.model_validate_json(conference_json)
    t = TEMPLATES[language]
    # The bodies are cut at these markers. They are made afresh for each template, so no value of
    # a conference (which comes from outside) can hold them and break every mail of the conference.
    marker, link_marker = f"greeting-{uuid.uuid4().hex}", f"link-{uuid.uuid4().hex}"
    footer_marker = f"footer-{uuid.uuid4().hex}"
    facts = replace(_facts(conference, Recipient(name="", email="", language=language)), greeting=marker)
    tz = ZoneInfo(conference.timezone)
    subject = t["subject"].format(
        title=conference.title, short_date=_short_date(conference.starts_at.astimezone(tz), language)
    )
    plain = _plain_body(facts, t, sender, link_marker) + footer_marker
    before_end, end, rest = _html_body(facts, t, sender, language, link_marker).rpartition("</body>")
    html_body = before_end + footer_marker + end + rest
    # The HTML link is in the href and in the text: two markers there, filled with the same link.
    return _Template(
        headers=_address_header("From", sender.name, sender.email) + _header("Subject", _one_line(subject)),
        plain=_cut(plain, marker, link_marker, footer_marker),
        html=_cut(html_body, html.escape(marker), link_marker, link_marker, footer_marker),
        calendar=calendar_template(
            conference=conference,
            organizer_email=sender.email,
            organizer_name=sender.name,
            uid_domain=domain,
            method="REQUEST",
        ),
        greeting=t["greeting"],
        answer_link=t["answer_link"],
        language=language,
    )


def render_invitation(
    *,
    conference: ConferenceDetails,
    recipient: Recipient,
    sender: Sender,
    invitation_id: str,
    domain: str,
    link: str,
    footer: Footer,
    resend: int = 0,
) -> OutgoingMail:
    """The complete invitation mail, ready for SMTP; ``domain`` also scopes Message-ID and UID;
    ``link``: the recipient's personal answer link; ``footer``: the recipient's unsubscribe
    headers and footer; ``resend``: 0, or the n-th resend.

    Structure: multipart/mixed of (multipart/alternative of text and HTML) and the ``.ics``.
    """
    t = _template(conference.model_dump_json(), recipient.language, sender, domain)
    greeting = t.greeting.format(name=recipient.name)
    msg_id = invitation_message_id(invitation_id, resend, domain)
    answer_line = t.answer_link.format(link=link)
    ics = t.calendar.for_attendee(recipient.email, recipient.name, answer_line).decode("utf-8")
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
            footer.headers(),
            f"Content-Language: {t.language}{CRLF}",
            f'Content-Type: multipart/mixed; boundary="{mixed}"{CRLF}',
            CRLF,
            f"--{mixed}{CRLF}",
            f'Content-Type: multipart/alternative; boundary="{alternative}"{CRLF}',
            CRLF,
            f"--{alternative}{CRLF}",
            _text_part_headers("plain"),
            _qp(_fill(t.plain, greeting, link, footer.plain(t.language))),
            CRLF,
            f"--{alternative}{CRLF}",
            _text_part_headers("html"),
            _qp(_fill(t.html, html.escape(greeting), html.escape(link), html.escape(link), footer.html(t.language))),
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


def _alternative(plain: str, html_body: str) -> list[str]:
    """The Content-Type header and body of a multipart/alternative of the text and the HTML.
    "=_" never occurs in quoted-printable text, so the boundary never collides with a body."""
    alternative = f"=_alt_{uuid.uuid4().hex}"
    return [
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


def _text_part_headers(subtype: str, params: str = "", more: str = "") -> str:
    """The headers of a UTF-8 text part and the blank line that ends them."""
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{params}{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{more}{CRLF}"
    )


def reply_summary(reply: Reply, language: Language) -> str:
    """The answer in one line: "Zusage, 2 Personen, stufenloser Zugang" / "accepted, 2 people, …"."""
    t = TEMPLATES[language]
    parts = [t[reply.answer]]
    if reply.answer != "declined":
        if reply.attendees:
            parts.append(t["people_1"] if reply.attendees == 1 else t["people_n"].format(count=reply.attendees))
        if reply.interpreter_language:
            parts.append(t["interpreter"].format(language=_one_line(reply.interpreter_language)))
        if reply.step_free_access:
            parts.append(t["step_free"])
        if reply.children:
            parts.append(t["children_1"] if reply.children == 1 else t["children_n"].format(count=reply.children))
    return ", ".join(parts)


def render_confirmation(
    *,
    conference: ConferenceDetails,
    recipient: Recipient,
    sender: Sender,
    reply: Reply,
    invitation_id: str,
    message_id: str,
    domain: str,
    link: str,
    footer: Footer,
) -> OutgoingMail:
    """The confirmation of one answer, ready for SMTP: what was answered, the conference, and the
    personal link to change the answer. ``message_id``: ``confirmation_message_id`` of the answer's
    event; it refers to the invitation's, so mail clients thread the two.

    Structure: multipart/alternative of text and HTML (no calendar: the invitation brought it).
    Rare (one per answer), so it is rendered whole each time, not from a cached template.
    """
    t = TEMPLATES[recipient.language]
    facts = _facts(conference, recipient)
    tz = ZoneInfo(conference.timezone)
    subject = t["confirmation_subject"].format(
        title=conference.title, short_date=_short_date(conference.starts_at.astimezone(tz), recipient.language)
    )
    answer = f"{t['label_answer']}: {reply_summary(reply, recipient.language)}"
    fields = _fields(facts, t)
    plain = "\n".join(
        [facts.greeting, "", t["confirmation_intro"], "", answer, ""]
        + [f"{label}: {value}" for label, value in fields]
        + ["", t["change_link"].format(link=link), "", t["closing"], sender.name, ""]
    ) + footer.plain(recipient.language)
    e = html.escape
    rows = "\n".join(
        f'<tr><th scope="row" style="text-align:left;padding-right:1em">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in fields
    )
    html_body = (
        f'<!DOCTYPE html>\n<html lang="{recipient.language}">\n<head><meta charset="utf-8">'
        f"<title>{e(subject)}</title></head>\n<body>\n"
        f"<p>{e(facts.greeting)}</p>\n<p>{e(t['confirmation_intro'])}</p>\n"
        f"<p><strong>{e(answer)}</strong></p>\n<table>\n{rows}\n</table>\n"
        f"{_html_link_sentence(t['change_link'], link)}\n"
        f"<p>{e(t['closing'])}<br>\n{e(sender.name)}</p>\n{footer.html(recipient.language)}</body>\n</html>\n"
    )
    msg_id = message_id
    text = "".join(
        [
            "MIME-Version: 1.0" + CRLF,
            _address_header("From", sender.name, sender.email),
            _header("Subject", _one_line(subject)),
            _address_header("To", recipient.name, recipient.email),
            f"Date: {format_datetime(datetime.now(UTC))}{CRLF}",
            f"Message-ID: {msg_id}{CRLF}",
            f"References: {invitation_message_id(invitation_id, 0, domain)}{CRLF}",
            footer.headers(),
            f"Content-Language: {recipient.language}{CRLF}",
            *_alternative(plain, html_body),
        ]
    )
    return OutgoingMail(sender=sender.email, recipient=recipient.email, message_id=msg_id, data=text.encode("utf-8"))
