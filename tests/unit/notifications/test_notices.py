"""The mails that follow an invitation, rendered and parsed back as a mail client would: the update
says what changed (old and new, in the recipient's language) and replaces the calendar entry; the
cancellation withdraws it; reminders say what they are."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from notifications.calendar import conference_uid
from notifications.mail import OutgoingMail
from notifications.notices import (
    cancellation_message_id,
    changes,
    reminder_message_id,
    render_cancellation,
    render_reminder,
    render_update,
    update_message_id,
)
from quartier_shared.events import ConferenceDetails, Language, Venue
from tests.unit.notifications.fakes import FOOTER, LINKS
from tests.unit.notifications.test_mail import (
    DOMAIN,
    RECIPIENTS,
    SENDER,
    attached_event,
    body,
    conference,
    render_kind,
)

BEFORE = conference(sequence=0)
# What a coordinator may change, one field at a time: (the change, German line, English line).
CHANGES: dict[str, tuple[dict[str, Any], str, str]] = {
    "title": (
        {"title": "Stadtteilkonferenz Borbeck"},
        "Veranstaltung: bisher „Integrationskonferenz Borbeck“, jetzt „Stadtteilkonferenz Borbeck“",
        "Event: was “Integrationskonferenz Borbeck”, now “Stadtteilkonferenz Borbeck”",
    ),
    "time": (
        {"starts_at": datetime(2027, 3, 11, 17, 0, tzinfo=UTC), "ends_at": datetime(2027, 3, 11, 19, 30, tzinfo=UTC)},
        "Datum und Uhrzeit: bisher Donnerstag, 4. März 2027, 17:00–20:00 Uhr (CET, Europe/Berlin), "
        "jetzt Donnerstag, 11. März 2027, 18:00–20:30 Uhr (CET, Europe/Berlin)",
        "Date and time: was Thursday, 4 March 2027, 17:00–20:00 (CET, Europe/Berlin), "
        "now Thursday, 11 March 2027, 18:00–20:30 (CET, Europe/Berlin)",
    ),
    "venue": (
        {"venue": Venue(name="Schloss Borbeck", address="Schloßstraße 101, 45355 Essen")},
        "Ort: bisher Bürgerhaus Musterstraße, Musterstraße 12, 45355 Essen, "
        "jetzt Schloss Borbeck, Schloßstraße 101, 45355 Essen",
        "Place: was Bürgerhaus Musterstraße, Musterstraße 12, 45355 Essen, "
        "now Schloss Borbeck, Schloßstraße 101, 45355 Essen",
    ),
    "agenda": (
        {"agenda": ["Begrüßung", "Sprachkurse"]},
        "Tagesordnung: bisher 1. Begrüßung; 2. Wohnraum & Schule; 3. Sprachkurse – Bedarf im Stadtteil, "
        "jetzt 1. Begrüßung; 2. Sprachkurse",
        "Agenda: was 1. Begrüßung; 2. Wohnraum & Schule; 3. Sprachkurse – Bedarf im Stadtteil, "
        "now 1. Begrüßung; 2. Sprachkurse",
    ),
}


def update(
    change: dict[str, Any], language: Language = "de", confirm: bool = False, previous: ConferenceDetails = BEFORE
) -> tuple[OutgoingMail, EmailMessage]:
    after = previous.model_copy(update={**change, "sequence": previous.sequence + 1})
    mail = render_update(
        conference=after,
        previous=previous,
        confirm=confirm,
        recipient=RECIPIENTS[language],
        sender=SENDER,
        invitation_id="inv-0815",
        domain=DOMAIN,
        footer=FOOTER,
        link=LINKS.for_invitation("inv-0815", after.ends_at),
    )
    return mail, render_kind_parse(mail)


def render_kind_parse(mail: OutgoingMail) -> EmailMessage:
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("field", CHANGES)
@pytest.mark.parametrize("language", ["de", "en"])
def test_the_first_paragraph_says_what_changed_old_and_new(field: str, language: Language) -> None:
    change, german, english = CHANGES[field]
    _, parsed = update(change, language)
    text = body(parsed, "plain")
    greeting, first, changed_lines, *_ = text.split("\n\n")
    assert greeting.startswith("Guten Tag" if language == "de" else "Dear")
    assert first == (
        "die Integrationskonferenz, zu der wir Sie eingeladen haben, hat sich geändert:"
        if language == "de"
        else "the integration conference we invited you to has changed:"
    )
    assert changed_lines == (german if language == "de" else english)  # that one, and nothing else
    html = body(parsed, "html")
    assert "<li>" in html and ("bisher" in html if language == "de" else "was " in html)


def test_several_changes_each_have_their_line_and_the_rest_shows_the_conference_as_it_is_now() -> None:
    both = CHANGES["time"][0] | CHANGES["venue"][0]
    lines = changes(BEFORE, BEFORE.model_copy(update=both), "de")
    assert lines == [CHANGES["time"][1], CHANGES["venue"][1]]
    _, parsed = update(both)
    text = body(parsed, "plain")
    assert "So sieht die Konferenz jetzt aus:" in text
    assert "Ort: Schloss Borbeck, Schloßstraße 101, 45355 Essen" in text
    assert "Uhrzeit: 18:00–20:30 Uhr" in text


def test_a_change_in_another_time_zone_shows_each_time_in_its_own_zone() -> None:
    moved = BEFORE.model_copy(update={"timezone": "Europe/London"})
    (line,) = changes(BEFORE, moved, "en")
    assert "17:00–20:00 (CET, Europe/Berlin)" in line and "16:00–19:00 (GMT, Europe/London)" in line


def test_nothing_shown_changed_says_the_details_were_updated() -> None:
    _, parsed = update({"district_name": "Borbeck-Mitte"}, "en")
    assert "the details of the integration conference we invited you to were updated." in body(parsed, "plain")


@pytest.mark.parametrize(
    ("language", "sentence"),
    [
        ("de", "Sie haben zugesagt. Bitte bestätigen Sie über diesen Link, ob Sie zur neuen Zeit kommen: "),
        ("en", "You accepted. Please confirm through this link whether you are coming at the new time: "),
    ],
)
def test_confirm_asks_who_accepted_to_confirm_through_the_personal_link(language: Language, sentence: str) -> None:
    _, asked = update(CHANGES["time"][0], language, confirm=True)
    _, not_asked = update(CHANGES["time"][0], language, confirm=False)
    link = LINKS.for_invitation("inv-0815", datetime(2027, 3, 11, 19, 30, tzinfo=UTC))
    paragraphs = body(asked, "plain").split("\n\n")
    assert paragraphs[3] == sentence + link  # right after what changed
    assert f'<a href="{link}">' in body(asked, "html")
    assert sentence not in body(not_asked, "plain")


def test_the_update_replaces_the_calendar_entry_same_uid_new_sequence_request() -> None:
    mail, parsed = update(CHANGES["time"][0], "de")
    calendar, event = attached_event(parsed)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == conference_uid(BEFORE.conference_id, DOMAIN)
    assert event.decoded("SEQUENCE") == 1
    assert str(event["STATUS"]) == "CONFIRMED"
    assert event.decoded("DTSTART") == datetime(2027, 3, 11, 17, 0, tzinfo=UTC)
    assert parsed["Subject"] == "Geändert: Integrationskonferenz Borbeck am 11.03.2027"
    assert mail.message_id == update_message_id("inv-0815", 1, DOMAIN) == "<update-inv-0815.seq-1@essen.example.org>"
    assert parsed["References"] == "<invitation-inv-0815@essen.example.org>"


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_cancellation_withdraws_the_calendar_entry(language: Language) -> None:
    cancelled = conference(sequence=4)
    mail = render_cancellation(
        conference=cancelled,
        reason="Der Saal ist\r\nnicht verfügbar",
        recipient=RECIPIENTS[language],
        sender=SENDER,
        invitation_id="inv-0815",
        domain=DOMAIN,
        footer=FOOTER,
    )
    parsed = render_kind_parse(mail)
    calendar, event = attached_event(parsed)
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == conference_uid(cancelled.conference_id, DOMAIN)
    assert event.decoded("SEQUENCE") == 4
    calendar_part = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
    assert calendar_part.get_param("method") == "CANCEL"
    assert mail.message_id == cancellation_message_id("inv-0815", 4, DOMAIN)
    text = body(parsed, "plain")
    if language == "de":
        assert parsed["Subject"] == "Abgesagt: Integrationskonferenz Borbeck am 04.03.2027"
        assert "ist abgesagt." in text and "Grund: Der Saal ist nicht verfügbar" in text
    else:
        assert parsed["Subject"] == "Cancelled: Integrationskonferenz Borbeck on 4 March 2027"
        assert "is cancelled." in text and "Reason: Der Saal ist nicht verfügbar" in text
    assert "/rsvp/" not in text  # nothing left to answer


def test_a_cancellation_without_a_reason_names_none() -> None:
    text = body(render_kind("cancellation", conference(), "de", hostile=" "), "plain")
    assert "Grund" not in text and "ist abgesagt." in text


REMINDER_DE = "Erinnerung: Integrationskonferenz Borbeck am 04.03.2027"
REMINDER_EN = "Reminder: Integrationskonferenz Borbeck on 4 March 2027"


@pytest.mark.parametrize(
    ("reminder", "language", "subject", "first"),
    [
        (
            "please_answer",
            "de",
            "Erinnerung: Integrationskonferenz Borbeck am 04.03.2027",
            "Erinnerung: bitte antworten Sie",
        ),
        ("please_answer", "en", "Reminder: Integrationskonferenz Borbeck on 4 March 2027", "Reminder: please answer"),
        ("see_you", "de", "Erinnerung: Integrationskonferenz Borbeck am 04.03.2027", "Erinnerung: wir freuen uns"),
        ("see_you", "en", "Reminder: Integrationskonferenz Borbeck on 4 March 2027", "Reminder: we look forward"),
    ],
)
def test_reminders_say_what_they_are(reminder: str, language: Language, subject: str, first: str) -> None:
    details = conference()
    link = LINKS.for_invitation("inv-0815", details.ends_at)
    mail = render_reminder(
        conference=details,
        reminder="see_you" if reminder == "see_you" else "please_answer",
        reminder_id="P1D",
        recipient=RECIPIENTS[language],
        sender=SENDER,
        invitation_id="inv-0815",
        domain=DOMAIN,
        footer=FOOTER,
        link=link,
    )
    parsed = render_kind_parse(mail)
    assert parsed["Subject"] == subject
    text = body(parsed, "plain")
    assert text.split("\n\n")[1].startswith(first)
    assert link in text  # to answer, or to change the answer
    assert "Bürgerhaus Musterstraße" in text and "17:00" in text  # date and place
    assert mail.message_id == reminder_message_id("inv-0815", "P1D", DOMAIN)
    assert mail.message_id != reminder_message_id("inv-0815", "P7D", DOMAIN)
    assert [p for p in parsed.walk() if p.get_content_type() == "text/calendar"] == []
