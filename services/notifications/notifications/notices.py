"""The mails that follow a sent invitation: its update, its cancellation and its reminders.

Contract, for every one of them: in the recipient's language (German or English), plain text and
HTML (every value escaped there), a Message-ID that is stable per invitation, kind and sequence
(reminders: per ``reminder_id``), so a mail sent again after a crash carries the same id, a
``References`` to the invitation's, so mail programs thread them, and the recipient's unsubscribe
headers and footer (``footer``).

- The update's first paragraph says exactly what changed, old and new (title, date and time in
  the conference's time zone, place, agenda); with ``confirm`` a second one asks the invitee to
  confirm through their personal link. Its calendar is a ``METHOD:REQUEST`` with the same UID and
  the new ``SEQUENCE``, so it replaces the entry the invitation made.
- The cancellation carries the reason, if one was given, and a ``METHOD:CANCEL`` calendar with
  ``STATUS:CANCELLED``, the same UID and the higher ``SEQUENCE``.
- A reminder is "please answer" (with the personal link) or "see you" (date, time and place); no
  calendar, the invitation brought it.

The wording and the building blocks (dates, headers, encoding) are those of ``mail``.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Final
from zoneinfo import ZoneInfo

from quartier_shared.events import ConferenceDetails, Language, Reminder

from .calendar import calendar_template
from .domain import CANCELLATION, ID_NAMESPACE, REMINDER, UPDATE
from .footer import Footer
from .mail import (
    CRLF,
    TEMPLATES,
    OutgoingMail,
    Recipient,
    Sender,
    _address_header,
    _alternative,
    _facts,
    _fields,
    _header,
    _html_link_sentence,
    _one_line,
    _qp,
    _short_date,
    _text_part_headers,
    invitation_message_id,
    message_id,
)

# Filled with str.format on raw text, as in ``mail``; the HTML escapes every value it inserts.
WORDING: Final[dict[Language, dict[str, str]]] = {
    "de": {
        "update_subject": "Geändert: {title} am {short_date}",
        "changed": "die Integrationskonferenz, zu der wir Sie eingeladen haben, hat sich geändert:",
        "changed_nothing_shown": "die Angaben zur Integrationskonferenz, zu der wir Sie eingeladen haben, "
        "wurden aktualisiert.",
        "change": "{label}: bisher {old}, jetzt {new}",
        "label_when": "Datum und Uhrzeit",
        "no_agenda_short": "keine",
        "confirm": "Sie haben zugesagt. Bitte bestätigen Sie über diesen Link, ob Sie zur neuen Zeit kommen: {link}",
        "now": "So sieht die Konferenz jetzt aus:",
        "update_calendar_hint": "Der geänderte Kalendereintrag (invitation.ics) ersetzt den bisherigen.",
        "change_link": "Ihre Antwort können Sie über diesen Link geben oder ändern: {link}",
        "cancel_subject": "Abgesagt: {title} am {short_date}",
        "cancelled": "die folgende Integrationskonferenz, zu der wir Sie eingeladen haben, ist abgesagt.",
        "reason": "Grund: {reason}",
        "cancel_calendar_hint": "Der beiliegende Kalendereintrag (cancellation.ics) nimmt den Termin aus "
        "Ihrem Kalender.",
        "reminder_subject": "Erinnerung: {title} am {short_date}",
        "please_answer": "Erinnerung: bitte antworten Sie auf unsere Einladung zur folgenden Integrationskonferenz.",
        "please_answer_link": "Bitte antworten Sie über diesen Link: {link}",
        "see_you": "Erinnerung: wir freuen uns, Sie bei der folgenden Integrationskonferenz zu sehen.",
    },
    "en": {
        "update_subject": "Changed: {title} on {short_date}",
        "changed": "the integration conference we invited you to has changed:",
        "changed_nothing_shown": "the details of the integration conference we invited you to were updated.",
        "change": "{label}: was {old}, now {new}",
        "label_when": "Date and time",
        "no_agenda_short": "none",
        "confirm": "You accepted. Please confirm through this link whether you are coming at the new time: {link}",
        "now": "This is the conference now:",
        "update_calendar_hint": "The changed calendar entry (invitation.ics) replaces the earlier one.",
        "change_link": "You can give or change your answer through this link: {link}",
        "cancel_subject": "Cancelled: {title} on {short_date}",
        "cancelled": "the following integration conference, to which we invited you, is cancelled.",
        "reason": "Reason: {reason}",
        "cancel_calendar_hint": "The attached calendar entry (cancellation.ics) removes it from your calendar.",
        "reminder_subject": "Reminder: {title} on {short_date}",
        "please_answer": "Reminder: please answer our invitation to the following integration conference.",
        "please_answer_link": "Please answer through this link: {link}",
        "see_you": "Reminder: we look forward to seeing you at the following integration conference.",
    },
}


def update_message_id(invitation_id: str, sequence: int, domain: str) -> str:
    return message_id(f"{invitation_id}.seq-{sequence}", UPDATE, domain)


def cancellation_message_id(invitation_id: str, sequence: int, domain: str) -> str:
    return message_id(f"{invitation_id}.seq-{sequence}", CANCELLATION, domain)


def reminder_message_id(invitation_id: str, reminder_id: str, domain: str) -> str:
    """Through a UUID, as a reminder id from outside may hold anything."""
    return message_id(str(uuid.uuid5(ID_NAMESPACE, f"reminder:{invitation_id}:{reminder_id}")), REMINDER, domain)


def changes(previous: ConferenceDetails, current: ConferenceDetails, language: Language) -> list[str]:
    """What changed, one line each, old and new, in ``language``: title, date and time (in each
    version's own time zone), place, agenda. Empty when none of them did."""
    t, w = TEMPLATES[language], WORDING[language]
    nobody = Recipient(name="", email="", language=language)
    old, new = _facts(previous, nobody), _facts(current, nobody)
    lines = []
    if old.title != new.title:
        quoted = (_quoted(old.title, language), _quoted(new.title, language))
        lines.append(w["change"].format(label=t["label_title"], old=quoted[0], new=quoted[1]))
    old_when, new_when = f"{old.date}, {old.time}", f"{new.date}, {new.time}"
    if old_when != new_when:
        lines.append(w["change"].format(label=w["label_when"], old=old_when, new=new_when))
    if old.place != new.place:
        lines.append(w["change"].format(label=t["label_place"], old=old.place, new=new.place))
    if old.agenda != new.agenda:
        lines.append(
            w["change"].format(
                label=t["label_agenda"], old=_agenda_line(old.agenda, language), new=_agenda_line(new.agenda, language)
            )
        )
    return lines


def _quoted(text: str, language: Language) -> str:
    return f"„{text}“" if language == "de" else f"“{text}”"


def _agenda_line(agenda: tuple[str, ...], language: Language) -> str:
    if not agenda:
        return WORDING[language]["no_agenda_short"]
    return "; ".join(f"{number}. {item}" for number, item in enumerate(agenda, 1))


@dataclass(frozen=True)
class _LinkSentence:
    """A sentence of our own wording with ``{link}`` where the personal link goes (never a value
    from outside, which might hold ``{link}`` itself)."""

    wording: str


_Paragraph = str | tuple[str, ...] | _LinkSentence  # text, a list of lines, or a sentence with the link


@dataclass(frozen=True)
class _Body:
    subject: str
    paragraphs: tuple[_Paragraph, ...]


def render_update(
    *,
    conference: ConferenceDetails,
    previous: ConferenceDetails,
    confirm: bool,
    recipient: Recipient,
    sender: Sender,
    invitation_id: str,
    domain: str,
    link: str,
    footer: Footer,
) -> OutgoingMail:
    """The update of a sent invitation, with a ``METHOD:REQUEST`` calendar of the new sequence."""
    language = recipient.language
    t, w = TEMPLATES[language], WORDING[language]
    facts = _facts(conference, recipient)
    changed = changes(previous, conference, language)
    first: tuple[_Paragraph, ...] = (w["changed"], tuple(changed)) if changed else (w["changed_nothing_shown"],)
    paragraphs: list[_Paragraph] = [facts.greeting, *first]
    if confirm:
        paragraphs.append(_LinkSentence(w["confirm"]))
    paragraphs += [w["now"], tuple(f"{label}: {value}" for label, value in _fields(facts, t))]
    paragraphs += [_agenda_paragraph(facts.agenda, language), _LinkSentence(w["change_link"])]
    paragraphs.append(w["update_calendar_hint"])
    body = _Body(_subject(w["update_subject"], conference, language), tuple(paragraphs))
    ics = _calendar(conference, recipient, sender, domain, "REQUEST", t["answer_link"].format(link=link))
    msg_id = update_message_id(invitation_id, conference.sequence, domain)
    return _compose(body, recipient, sender, msg_id, invitation_message_id(invitation_id, 0, domain), link, ics, footer)


def render_cancellation(
    *,
    conference: ConferenceDetails,
    reason: str | None,
    recipient: Recipient,
    sender: Sender,
    invitation_id: str,
    domain: str,
    footer: Footer,
) -> OutgoingMail:
    """The cancellation of a sent invitation, with a ``METHOD:CANCEL`` calendar. No answer link:
    there is nothing left to answer."""
    language = recipient.language
    t, w = TEMPLATES[language], WORDING[language]
    facts = _facts(conference, recipient)
    paragraphs: list[_Paragraph] = [facts.greeting, w["cancelled"]]
    if reason and reason.strip():
        paragraphs.append(w["reason"].format(reason=_one_line(reason)))
    paragraphs += [tuple(f"{label}: {value}" for label, value in _fields(facts, t)), w["cancel_calendar_hint"]]
    body = _Body(_subject(w["cancel_subject"], conference, language), tuple(paragraphs))
    ics = _calendar(conference, recipient, sender, domain, "CANCEL", "")
    msg_id = cancellation_message_id(invitation_id, conference.sequence, domain)
    return _compose(body, recipient, sender, msg_id, invitation_message_id(invitation_id, 0, domain), "", ics, footer)


def render_reminder(
    *,
    conference: ConferenceDetails,
    reminder: Reminder,
    reminder_id: str,
    recipient: Recipient,
    sender: Sender,
    invitation_id: str,
    domain: str,
    link: str,
    footer: Footer,
) -> OutgoingMail:
    """A reminder: "please answer" with the personal link, or "see you" with date, time and place."""
    language = recipient.language
    t, w = TEMPLATES[language], WORDING[language]
    facts = _facts(conference, recipient)
    fields = tuple(f"{label}: {value}" for label, value in _fields(facts, t))
    paragraphs: tuple[_Paragraph, ...]
    if reminder == "please_answer":
        paragraphs = (facts.greeting, w["please_answer"], fields, _LinkSentence(w["please_answer_link"]))
    else:
        paragraphs = (facts.greeting, w["see_you"], fields, _LinkSentence(w["change_link"]))
    body = _Body(_subject(w["reminder_subject"], conference, language), paragraphs)
    msg_id = reminder_message_id(invitation_id, reminder_id, domain)
    return _compose(
        body, recipient, sender, msg_id, invitation_message_id(invitation_id, 0, domain), link, None, footer
    )


def _subject(template: str, conference: ConferenceDetails, language: Language) -> str:
    day = conference.starts_at.astimezone(ZoneInfo(conference.timezone))
    return template.format(title=conference.title, short_date=_short_date(day, language))


def _agenda_paragraph(agenda: tuple[str, ...], language: Language) -> tuple[str, ...]:
    t = TEMPLATES[language]
    items = tuple(f"{number}. {item}" for number, item in enumerate(agenda, 1)) or (t["no_agenda"],)
    return (f"{t['label_agenda']}:", *items)


def _calendar(
    conference: ConferenceDetails, recipient: Recipient, sender: Sender, domain: str, method: str, answer_line: str
) -> tuple[str, bytes]:
    template = calendar_template(
        conference=conference,
        organizer_email=sender.email,
        organizer_name=sender.name,
        uid_domain=domain,
        method=method,
    )
    return method, template.for_attendee(recipient.email, recipient.name, answer_line)


def _plain(body: _Body, sender: Sender, closing: str, link: str) -> str:
    blocks = []
    for p in body.paragraphs:
        if isinstance(p, _LinkSentence):
            blocks.append(p.wording.format(link=link))
        else:
            blocks.append(p if isinstance(p, str) else "\n".join(p))
    return "\n\n".join([*blocks, f"{closing}\n{sender.name}"]) + "\n"


def _html(body: _Body, sender: Sender, closing: str, language: Language, link: str, footer: Footer) -> str:
    e = html.escape
    blocks = []
    for p in body.paragraphs:
        if isinstance(p, _LinkSentence):
            blocks.append(_html_link_sentence(p.wording, link))
        elif isinstance(p, str):
            blocks.append(f"<p>{e(p)}</p>")
        else:
            blocks.append("<ul>\n" + "\n".join(f"<li>{e(line)}</li>" for line in p) + "\n</ul>")
    return (
        f'<!DOCTYPE html>\n<html lang="{language}">\n<head><meta charset="utf-8">'
        f"<title>{e(body.subject)}</title></head>\n<body>\n" + "\n".join(blocks) + "\n"
        f"<p>{e(closing)}<br>\n{e(sender.name)}</p>\n{footer.html(language)}</body>\n</html>\n"
    )


def _compose(
    body: _Body,
    recipient: Recipient,
    sender: Sender,
    msg_id: str,
    references: str | None,
    link: str,
    calendar: tuple[str, bytes] | None,
    footer: Footer,
) -> OutgoingMail:
    """The mail over the wire: multipart/alternative of text and HTML, inside multipart/mixed with
    the calendar when there is one; ``References`` only when there is a mail it refers to.
    "=_" never occurs in quoted-printable text, so the boundaries never collide with a body."""
    closing = TEMPLATES[recipient.language]["closing"]
    text_parts = _alternative(
        _plain(body, sender, closing, link) + footer.plain(recipient.language),
        _html(body, sender, closing, recipient.language, link, footer),
    )
    if calendar is None:
        content = text_parts
    else:
        method, ics = calendar
        mixed = f"=_mixed_{uuid.uuid4().hex}"
        filename = "cancellation.ics" if method == "CANCEL" else "invitation.ics"
        content = [
            f'Content-Type: multipart/mixed; boundary="{mixed}"{CRLF}',
            CRLF,
            f"--{mixed}{CRLF}",
            *text_parts,
            f"--{mixed}{CRLF}",
            _text_part_headers(
                "calendar", f'; method="{method}"', f'Content-Disposition: attachment; filename="{filename}"{CRLF}'
            ),
            _qp(ics.decode("utf-8")),
            CRLF,
            f"--{mixed}--{CRLF}",
        ]
    text = "".join(
        [
            "MIME-Version: 1.0" + CRLF,
            _address_header("From", sender.name, sender.email),
            _header("Subject", _one_line(body.subject)),
            _address_header("To", recipient.name, recipient.email),
            f"Date: {format_datetime(datetime.now(UTC))}{CRLF}",
            f"Message-ID: {msg_id}{CRLF}",
            *([] if references is None else [f"References: {references}{CRLF}"]),
            footer.headers(),
            f"Content-Language: {recipient.language}{CRLF}",
            *content,
        ]
    )
    return OutgoingMail(sender=sender.email, recipient=recipient.email, message_id=msg_id, data=text.encode("utf-8"))
