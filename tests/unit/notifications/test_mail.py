"""Invitation mail and its calendar, and the confirmation of an answer: render, serialise, parse
back as a mail client would; the personal link in each, verified as the answer page verifies it."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from icalendar import Calendar, Component
from pydantic import SecretStr

from notifications.calendar import conference_uid, invitation_calendar
from notifications.domain import Reply
from notifications.mail import (
    Recipient,
    Sender,
    confirmation_message_id,
    message_id,
    render_confirmation,
    render_invitation,
)
from notifications.notices import render_cancellation, render_reminder, render_update
from notifications.personal_links import LinkKeyMissing, PersonalLinks
from quartier_shared import links
from quartier_shared.events import ConferenceDetails, Language, Reminder, Venue
from tests.unit.notifications.fakes import FOOTER, LINK_SIGNING_PEM, LINK_VERIFY_KEY, LINKS

DOMAIN = "essen.example.org"
DASH = "\u2013"  # en dash: non-ASCII that must survive the trip through MIME
SENDER = Sender(name=f"Integrationskonferenzen Essen {DASH} Büro", email="integration@essen.example.org")
RECIPIENTS: dict[Language, Recipient] = {
    "de": Recipient(name="Jana Beispiel-Öztürk", email="jana.beispiel@example.org", language="de"),
    "en": Recipient(name="Sam Example", email="sam.example@example.org", language="en"),
}
AGENDA = ["Begrüßung", "Wohnraum & Schule", f"Sprachkurse {DASH} Bedarf im Stadtteil"]
LINK = "https://quartier.essen.example.org/rsvp/a.b.c"  # where the link itself does not matter


def conference(**changes: Any) -> ConferenceDetails:
    fields: dict[str, Any] = {
        "conference_id": "conf-4711",
        "district": "IV",
        "district_name": "Borbeck",
        "title": "Integrationskonferenz Borbeck",
        "starts_at": datetime(2027, 3, 4, 16, 0, tzinfo=UTC),  # 17:00 in Berlin (CET)
        "ends_at": datetime(2027, 3, 4, 19, 0, tzinfo=UTC),
        "timezone": "Europe/Berlin",
        "venue": Venue(name="Bürgerhaus Musterstraße", address="Musterstraße 12, 45355 Essen"),
        "agenda": AGENDA,
        "sequence": 3,
    }
    fields.update(changes)
    return ConferenceDetails(**fields)


def render(
    details: ConferenceDetails | None = None, language: Language = "de", invitation_id: str = "inv-0815"
) -> EmailMessage:
    """Render, serialise and parse back, so tests see what a receiving client sees."""
    details = details or conference()
    message = render_invitation(
        conference=details,
        recipient=RECIPIENTS[language],
        sender=SENDER,
        invitation_id=invitation_id,
        domain=DOMAIN,
        footer=FOOTER,
        link=LINKS.for_invitation(invitation_id, details.ends_at),
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


KINDS = ["invitation", "update", "cancellation", "please_answer", "see_you"]  # every mail of an invitation


def render_kind(
    kind: str, details: ConferenceDetails, language: Language = "de", hostile: str = "", invitation_id: str = "inv-0815"
) -> EmailMessage:
    """Any mail of an invitation, parsed back; ``hostile`` goes where the kind takes more text from
    outside (the cancellation's reason, the reminder's id)."""
    if kind == "invitation":
        return render(details, language, invitation_id)
    common: dict[str, Any] = {"recipient": RECIPIENTS[language], "sender": SENDER, "invitation_id": invitation_id}
    common["domain"] = DOMAIN
    common["footer"] = FOOTER
    link = LINKS.for_invitation(invitation_id, details.ends_at)
    if kind == "update":
        earlier = details.model_copy(update={"title": "Vorher", "agenda": ["Alt"], "sequence": details.sequence - 1})
        mail = render_update(conference=details, previous=earlier, confirm=True, link=link, **common)
    elif kind == "cancellation":
        mail = render_cancellation(conference=details, reason=hostile or "Raum nicht verfügbar", **common)
    else:
        reminder: Reminder = "see_you" if kind == "see_you" else "please_answer"
        mail = render_reminder(conference=details, reminder=reminder, reminder_id=hostile or "P7D", link=link, **common)
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    assert part.get_content_type() == f"text/{subtype}"
    content = part.get_content()
    assert isinstance(content, str)
    return "\n".join(content.splitlines())  # the wire form has CRLF line ends


def calendar_part(message: EmailMessage) -> EmailMessage:
    parts = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    part = parts[0]
    assert isinstance(part, EmailMessage)
    return part


def the_event(ics: bytes | str) -> tuple[Calendar, Component]:
    calendar = Calendar.from_ical(ics)
    assert isinstance(calendar, Calendar)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


def attached_event(message: EmailMessage) -> tuple[Calendar, Component]:
    return the_event(calendar_part(message).get_content())


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("de", "Einladung: Integrationskonferenz Borbeck am 04.03.2027"),
        ("en", "Invitation: Integrationskonferenz Borbeck on 4 March 2027"),
    ],
)
def test_subject_is_in_the_recipients_language(language: Language, subject: str) -> None:
    assert render(language=language)["Subject"] == subject


def test_subject_date_is_the_local_date_not_the_utc_date() -> None:
    # 23:30 UTC on Thursday is 00:30 on Friday in Berlin.
    late = conference(
        starts_at=datetime(2027, 3, 4, 23, 30, tzinfo=UTC), ends_at=datetime(2027, 3, 5, 1, 0, tzinfo=UTC)
    )
    message = render(late)
    assert message["Subject"] == "Einladung: Integrationskonferenz Borbeck am 05.03.2027"
    assert "Freitag, 5. März 2027" in body(message, "plain")


def test_non_ascii_headers_round_trip() -> None:
    message = render(conference(title=f"Integrationskonferenz Altenessen {DASH} Frühjahr"))
    assert message["Subject"] == f"Einladung: Integrationskonferenz Altenessen {DASH} Frühjahr am 04.03.2027"
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (SENDER.name, SENDER.email)
    recipient = message["To"].addresses[0]
    assert (recipient.display_name, recipient.addr_spec) == (
        "Jana Beispiel-Öztürk",
        "jana.beispiel@example.org",
    )


def test_message_id_is_stable_across_renders_and_differs_per_invitation() -> None:
    first, again = render(), render()
    assert first["Message-ID"] == again["Message-ID"] == "<invitation-inv-0815@essen.example.org>"
    assert first["Message-ID"] == message_id("inv-0815", "invitation", DOMAIN)
    assert render(invitation_id="inv-0816")["Message-ID"] != first["Message-ID"]


@pytest.mark.parametrize("bad", ["", "two words", "a@b", "<x>", "line\nbreak"])
def test_message_id_rejects_ids_that_would_break_the_header(bad: str) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        message_id(bad, "invitation", DOMAIN)


def test_date_header_is_present() -> None:
    date = render()["Date"].datetime
    assert date.tzinfo is not None
    assert abs(datetime.now(UTC) - date) < timedelta(minutes=5)


# --- body ---------------------------------------------------------------------------------------


def test_structure_is_alternative_text_and_html_plus_ics_attachment() -> None:
    message = render()
    assert message.get_content_type() == "multipart/mixed"
    types = [part.get_content_type() for part in message.walk()]
    assert types == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/calendar"]
    part = calendar_part(message)
    assert part.get_filename() == "invitation.ics"
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_charset() == "utf-8"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "de",
            ["Guten Tag Jana Beispiel-Öztürk", "Stadtbezirk", "Donnerstag, 4. März 2027", "17:00", "20:00",
             "Uhr", "Europe/Berlin", "Mit freundlichen Grüßen"],
        ),
        (
            "en",
            ["Dear Sam Example", "District", "Thursday, 4 March 2027", "17:00", "20:00", "Europe/Berlin",
             "Kind regards"],
        ),
    ],
)  # fmt: skip
@pytest.mark.parametrize("subtype", ["plain", "html"])
def test_both_bodies_carry_every_fact(language: Language, expected: list[str], subtype: str) -> None:
    text = body(render(language=language), subtype)
    facts = [
        "Integrationskonferenz Borbeck",
        "Borbeck",
        "Bürgerhaus Musterstraße",
        "Musterstraße 12, 45355 Essen",
        SENDER.name,
    ]
    agenda = [item.replace("&", "&amp;") if subtype == "html" else item for item in AGENDA]
    for fact in [*expected, *facts, *agenda]:
        assert fact in text, f"{fact!r} missing from the {language} text/{subtype} part"


def test_agenda_is_a_numbered_list() -> None:
    message = render()
    plain = body(message, "plain")
    assert f"1. Begrüßung\n2. Wohnraum & Schule\n3. Sprachkurse {DASH} Bedarf im Stadtteil" in plain
    html = body(message, "html")
    assert "<ol>" in html
    assert html.count("<li>") == len(AGENDA)


def test_german_and_english_bodies_differ() -> None:
    assert "Tagesordnung" in body(render(language="de"), "plain")
    assert "Tagesordnung" not in body(render(language="en"), "plain")
    assert "Agenda" in body(render(language="en"), "html")


def test_local_time_follows_daylight_saving_time() -> None:
    summer = conference(
        starts_at=datetime(2027, 7, 1, 15, 0, tzinfo=UTC), ends_at=datetime(2027, 7, 1, 18, 0, tzinfo=UTC)
    )
    plain = body(render(summer), "plain")
    assert f"17:00{DASH}20:00 Uhr" in plain
    assert "CEST" in plain


def test_multi_day_conference_shows_both_dates() -> None:
    weekend = conference(
        starts_at=datetime(2027, 3, 5, 16, 0, tzinfo=UTC), ends_at=datetime(2027, 3, 6, 12, 0, tzinfo=UTC)
    )
    plain = body(render(weekend, language="en"), "plain")
    assert f"Friday, 5 March 2027 {DASH} Saturday, 6 March 2027" in plain
    assert "starts 17:00, ends 13:00" in plain


def test_html_escapes_user_text() -> None:
    hostile = conference(
        title="<script>alert(1)</script> Konferenz",
        venue=Venue(name="Haus <b>A</b>", address="Weg 1 & 2, 45355 Essen"),
        agenda=["<img src=x onerror=alert(1)>"],
    )
    message = render(hostile)
    html = body(message, "html")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Konferenz" in html
    assert "<b>" not in html
    assert "Haus &lt;b&gt;A&lt;/b&gt;" in html
    assert "Weg 1 &amp; 2" in html
    assert "<img" not in html
    # The plain part shows the text as the organiser typed it.
    assert "<script>alert(1)</script> Konferenz" in body(message, "plain")


def test_empty_agenda_says_it_will_follow() -> None:
    message = render(conference(agenda=[]), language="en")
    assert "The agenda will follow." in body(message, "plain")
    assert "<ol>" not in body(message, "html")


# --- calendar -----------------------------------------------------------------------------------


def test_attached_calendar_is_a_request_with_all_fields() -> None:
    details = conference()
    calendar, event = attached_event(render(details))
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(calendar["PRODID"]) == "-//Quartier//Integration conferences//DE"
    assert str(calendar["VERSION"]) == "2.0"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]

    assert str(event["UID"]) == "conference-conf-4711@essen.example.org"
    assert event.decoded("SEQUENCE") == 3
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["SUMMARY"]) == "Integrationskonferenz Borbeck"
    assert str(event["LOCATION"]) == "Bürgerhaus Musterstraße, Musterstraße 12, 45355 Essen"
    description = str(event["DESCRIPTION"])
    assert all(item in description for item in AGENDA)

    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    start = event.decoded("DTSTART")
    assert start == details.starts_at
    assert (start.hour, start.minute) == (17, 0)  # local wall-clock time, not UTC
    assert event["DTEND"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTEND") == details.ends_at
    assert event.decoded("DTSTAMP").utcoffset() == timedelta(0)


def test_organizer_and_attendee() -> None:
    _, event = attached_event(render())
    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:integration@essen.example.org"
    assert organizer.params["CN"] == SENDER.name
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:jana.beispiel@example.org"
    assert attendee.params["CN"] == "Jana Beispiel-Öztürk"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    # Nothing reads calendar replies: the attendee answers through the personal link instead.
    assert attendee.params["RSVP"] == "FALSE"


def test_uid_is_stable_per_conference() -> None:
    first = str(attached_event(render())[1]["UID"])
    again = str(attached_event(render(invitation_id="inv-other", language="en"))[1]["UID"])
    other = str(attached_event(render(conference(conference_id="conf-4712")))[1]["UID"])
    assert first == again == conference_uid("conf-4711", DOMAIN)
    assert other != first


def calendar_file(method: str, **changes: Any) -> bytes:
    """The calendar file for the German recipient, with ``method`` and the conference changed as given."""
    return invitation_calendar(
        conference=conference(**changes),
        organizer_email=SENDER.email,
        organizer_name=SENDER.name,
        attendee_email=RECIPIENTS["de"].email,
        attendee_name=RECIPIENTS["de"].name,
        uid_domain=DOMAIN,
        method=method,
    )


def test_cancel_calendar() -> None:
    calendar, event = the_event(calendar_file("CANCEL", sequence=4))
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == conference_uid("conf-4711", DOMAIN)
    assert event.decoded("SEQUENCE") == 4


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="PUBLISH"):
        calendar_file("PUBLISH")


def test_ics_uses_crlf_content_lines() -> None:
    raw = calendar_file("CANCEL")
    assert raw.startswith(b"BEGIN:VCALENDAR\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_recipients_of_one_conference_share_the_template_but_not_their_own_parts() -> None:
    """Rendering reuses what is the same for a conference; each mail still carries its own
    greeting, addressee, Message-ID and ATTENDEE, and a changed conference is rendered anew."""
    other = Recipient(name="Kai Muster", email="kai.muster@example.org", language="de")
    first = render()
    second_raw = render_invitation(
        conference=conference(),
        recipient=other,
        sender=SENDER,
        invitation_id="inv-0816",
        domain=DOMAIN,
        footer=FOOTER,
        link=LINK,
    )
    second = email.message_from_bytes(second_raw.as_bytes(), policy=email.policy.default)
    assert isinstance(second, EmailMessage)
    assert "Guten Tag Jana Beispiel-Öztürk" in body(first, "plain")
    assert body(second, "plain").startswith("Guten Tag Kai Muster,\n\nwir laden Sie herzlich")
    assert "Jana" not in body(second, "html")
    assert second["To"].addresses[0].addr_spec == "kai.muster@example.org"
    assert str(attached_event(second)[1]["attendee"]) == "mailto:kai.muster@example.org"  # one, not a list
    first_link, second_link = (
        body(first, "plain").split(LINKS.base_url)[1].split()[0],
        body(second, "plain").split(LINKS.base_url)[1].split()[0],
    )
    assert (
        body(first, "plain").replace(first_link, "").split("\n")[1:]
        == body(second, "plain").replace(second_link, "").split("\n")[1:]
    )

    renamed = render(conference(title="Integrationskonferenz Borbeck (verlegt)"))
    assert "verlegt" in renamed["Subject"] and "verlegt" in body(renamed, "html")
    assert "verlegt" in str(attached_event(renamed)[1]["summary"])


def test_an_internationalised_address_goes_out_as_utf8_and_everything_else_as_ascii() -> None:
    ascii_mail = render_invitation(
        conference=conference(),
        recipient=RECIPIENTS["de"],
        sender=SENDER,
        invitation_id="inv-1",
        domain=DOMAIN,
        footer=FOOTER,
        link=LINK,
    )
    assert ascii_mail.as_bytes().isascii()  # umlauts in names and bodies are encoded
    jurgen = Recipient(name="Jürgen Beispiel", email="jürgen@beispiel.example.org", language="de")
    raw = render_invitation(
        conference=conference(),
        recipient=jurgen,
        sender=SENDER,
        invitation_id="inv-2",
        domain=DOMAIN,
        footer=FOOTER,
        link=LINK,
    ).as_bytes()
    parsed = email.message_from_string(raw.decode("utf-8"), policy=email.policy.SMTPUTF8)  # as RFC 6532 reads it
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"].addresses[0].addr_spec == "jürgen@beispiel.example.org"
    assert parsed["To"].addresses[0].display_name == "Jürgen Beispiel"
    assert "Guten Tag Jürgen Beispiel" in body(parsed, "plain")


HOSTILE_TEXTS = [
    "\x00greeting\x00",  # the template's internal marker, as it once was
    "{name} {title} {0} %s %(x)s",
    "<script>alert(1)</script> & &amp; \"'",
    "Zeile\r\nBcc: victim@example.org\r\n\r\nText",
    "\u202eevil\u200b\ufeff",
    "=?utf-8?q?=41?= =_mixed_ =0A BEGIN:VEVENT\nEND:VCALENDAR",
    "x" * 5000,
    "",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
@pytest.mark.parametrize(
    "field", ["title", "district", "district_name", "venue_name", "venue_address", "agenda", "more"]
)
def test_hostile_text_in_any_field_renders_a_mail_that_parses(field: str, text: str, kind: str) -> None:
    special: dict[str, dict[str, Any]] = {
        "venue_name": {"venue": Venue(name=text, address="Musterstraße 12")},
        "venue_address": {"venue": Venue(name="Bürgerhaus", address=text)},
        "agenda": {"agenda": [text, text]},
        "more": {},  # the kind's own text from outside: a cancellation's reason, a reminder's id
    }
    changes = special.get(field, {field: text})
    for language in RECIPIENTS:
        parsed = render_kind(kind, conference(**changes), language, hostile=text if field == "more" else "")
        assert parsed["Bcc"] is None
        assert body(parsed, "plain") and "<script>" not in body(parsed, "html")
        calendars = [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]
        assert len(calendars) == (0 if kind in ("please_answer", "see_you") else 1)
        for ics in calendars:
            Calendar.from_ical(ics.get_content())


@pytest.mark.parametrize(
    "changes",
    [
        {"starts_at": datetime(9998, 12, 31, 10, tzinfo=UTC), "ends_at": datetime(9999, 12, 31, 12, tzinfo=UTC)},
        {"starts_at": datetime(1, 1, 2, 10, tzinfo=UTC), "ends_at": datetime(1, 1, 2, 12, tzinfo=UTC)},
        {"starts_at": datetime(2027, 3, 4, 16, tzinfo=UTC), "ends_at": datetime(2027, 3, 4, 15, tzinfo=UTC)},
        {"sequence": -1},
        {"sequence": 2**62},
        {"conference_id": "conf\r\nX-Evil: 1"},
    ],
    ids=["year 9999", "year 1", "ends before it starts", "negative sequence", "huge sequence", "id with CRLF"],
)
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_times_and_ids_render_a_mail_that_parses(changes: dict[str, Any], kind: str) -> None:
    parsed = render_kind(kind, conference(**changes))
    assert parsed["X-Evil"] is None
    for ics in [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]:
        Calendar.from_ical(ics.get_content())


# --- the personal answer link ---------------------------------------------------------------------

ANSWER_SENTENCES: dict[Language, tuple[str, str, str]] = {
    "de": ("Bitte antworten Sie über diesen Link:", "kein Konto", "Vertretung"),
    "en": ("Please answer through this link:", "no account", "deputy"),
}


def link_in(text: str, base_url: str = LINKS.base_url) -> str:
    """The one answer link in ``text`` (it may be there more than once, as href and as text)."""
    found = set(re.findall(re.escape(base_url) + r"/rsvp/[A-Za-z0-9_.-]+", text))
    assert len(found) == 1, found
    return found.pop()


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("subtype", ["plain", "html"])
def test_both_bodies_carry_the_personal_link_in_the_recipients_language(language: Language, subtype: str) -> None:
    text = body(render(language=language), subtype)
    ask, no_account, deputy = ANSWER_SENTENCES[language]
    link = link_in(text)
    assert f"{ask} {link}" in text if subtype == "plain" else f'{ask} <a href="{link}">{link}</a>' in text
    assert no_account in text and deputy in text
    assert ANSWER_SENTENCES["en" if language == "de" else "de"][0] not in text


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_link_verifies_with_the_public_key_names_the_invitation_and_expires_when_the_conference_ends(
    language: Language,
) -> None:
    details = conference()
    message = render(details, language, invitation_id="inv-4242")
    link = link_in(body(message, "plain"))
    assert link_in(body(message, "html")) == link
    token = link.rsplit("/", 1)[1]
    claims = links.verify(token, LINK_VERIFY_KEY, now=details.starts_at)
    assert claims.invitation_id == "inv-4242"
    assert claims.expires_at == details.ends_at
    with pytest.raises(links.ExpiredLink):
        links.verify(token, LINK_VERIFY_KEY, now=details.ends_at)
    other_key = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(links.InvalidLink):
        links.verify(token, other_key, now=details.starts_at)


def test_the_link_is_html_escaped_and_its_base_url_is_the_setting() -> None:
    odd = PersonalLinks.of('https://example.org/q?a=1&b="2"/', SecretStr(LINK_SIGNING_PEM))
    details = conference()
    mail = render_invitation(
        conference=details,
        recipient=RECIPIENTS["de"],
        sender=SENDER,
        invitation_id="inv-1",
        domain=DOMAIN,
        footer=FOOTER,
        link=odd.for_invitation("inv-1", details.ends_at),
    )
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    raw_link = link_in(body(parsed, "plain"), 'https://example.org/q?a=1&b="2"')  # the trailing slash dropped
    html_text = body(parsed, "html")
    assert raw_link not in html_text
    assert f'href="{raw_link.replace("&", "&amp;").replace(chr(34), "&quot;")}"' in html_text


def test_the_calendar_description_points_to_the_personal_link_after_the_agenda() -> None:
    message = render(language="en")
    _, event = attached_event(message)
    description = str(event["DESCRIPTION"])
    assert description.startswith("1. Begrüßung")
    assert f"Please answer through this link: {link_in(body(message, 'plain'))}" in description
    # Without an agenda, the link is the whole description.
    _, bare = attached_event(render(conference(agenda=[]), language="en"))
    assert str(bare["DESCRIPTION"]).startswith("Please answer through this link: https://")


def test_each_resend_is_a_mail_of_its_own_with_its_own_message_id() -> None:
    details = conference()

    def message_id_of(resend: int) -> str:
        mail = render_invitation(
            conference=details,
            recipient=RECIPIENTS["de"],
            sender=SENDER,
            invitation_id="inv-0815",
            domain=DOMAIN,
            footer=FOOTER,
            link=LINK,
            resend=resend,
        )
        return mail.message_id

    assert message_id_of(0) == "<invitation-inv-0815@essen.example.org>"  # as before resends existed
    assert message_id_of(1) == "<invitation-inv-0815.resend-1@essen.example.org>"
    assert len({message_id_of(0), message_id_of(1), message_id_of(2), message_id_of(2)}) == 3


def test_a_missing_or_unusable_signing_key_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    for setting in (None, SecretStr(""), SecretStr(str(tmp_path / "missing.pem")), SecretStr("-----BEGIN junk")):
        with pytest.raises(LinkKeyMissing, match="LINK_SIGNING_KEY"):
            PersonalLinks.of("https://example.org", setting).check()
    key_file = tmp_path / "key.pem"
    key_file.write_text(LINK_SIGNING_PEM)
    for usable in (SecretStr(str(key_file)), SecretStr(LINK_SIGNING_PEM)):
        PersonalLinks.of("https://example.org", usable).check()


# --- the confirmation of an answer ----------------------------------------------------------------


def confirmation(
    reply: Reply, language: Language = "de", event_id: str = "event-1", details: ConferenceDetails | None = None
) -> EmailMessage:
    details = details or conference()
    mail = render_confirmation(
        conference=details,
        recipient=RECIPIENTS[language],
        sender=SENDER,
        reply=reply,
        invitation_id="inv-0815",
        message_id=confirmation_message_id(event_id, DOMAIN),
        domain=DOMAIN,
        footer=FOOTER,
        link=LINKS.for_invitation("inv-0815", details.ends_at),
    )
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize(
    ("language", "reply", "summary"),
    [
        ("de", Reply("accepted", 2), "Ihre Antwort: Zusage, 2 Personen"),
        ("en", Reply("accepted", 2), "Your answer: accepted, 2 people"),
        ("de", Reply("tentative", 1, "ar", True, 3), "Ihre Antwort: Zusage unter Vorbehalt, 1 Person, "
         "Dolmetschen: ar, stufenloser Zugang, Kinderbetreuung für 3 Kinder"),
        ("en", Reply("accepted", 3, None, False, 1), "Your answer: accepted, 3 people, childcare for 1 child"),
        ("de", Reply("declined", 0), "Ihre Antwort: Absage"),
        ("en", Reply("declined", 0), "Your answer: declined"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("subtype", ["plain", "html"])
def test_a_confirmation_says_the_answer_in_the_recipients_language_with_the_link_to_change_it(
    language: Language, reply: Reply, summary: str, subtype: str
) -> None:
    message = confirmation(reply, language)
    text = body(message, subtype)
    assert f"{summary}\n" in text if subtype == "plain" else f"<strong>{summary}</strong>" in text
    assert "Integrationskonferenz Borbeck" in text and "Musterstraße 12, 45355 Essen" in text
    change = "Ändern können Sie Ihre Antwort" if language == "de" else "You can change your answer"
    assert change in text
    claims = links.verify(link_in(text).rsplit("/", 1)[1], LINK_VERIFY_KEY, now=conference().starts_at)
    assert claims.invitation_id == "inv-0815" and claims.expires_at == conference().ends_at
    subject = "Ihre Antwort: Integrationskonferenz Borbeck am 04.03.2027"
    assert message["Subject"] == (
        subject if language == "de" else "Your answer: Integrationskonferenz Borbeck on 4 March 2027"
    )
    assert message.get_content_type() == "multipart/alternative"  # no calendar: the invitation brought it


def test_a_confirmations_message_id_follows_from_the_answer_event_and_refers_to_the_invitation() -> None:
    first, again, later = (confirmation(Reply("accepted", 2), event_id=e) for e in ("event-1", "event-1", "event-2"))
    assert first["Message-ID"] == again["Message-ID"] != later["Message-ID"]
    assert re.fullmatch(r"<confirmation-[0-9a-f-]{36}@essen\.example\.org>", first["Message-ID"])
    assert first["References"] == "<invitation-inv-0815@essen.example.org>"
    # An event id from outside may hold anything: it still makes a valid Message-ID.
    odd = confirmation(Reply("accepted", 2), event_id="a b@<c>\r\nX-Evil: 1")
    assert odd["X-Evil"] is None and odd["Message-ID"].startswith("<confirmation-")


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
def test_hostile_text_in_a_confirmation_renders_a_mail_that_parses(text: str) -> None:
    hostile = conference(title=text, venue=Venue(name=text, address=text))
    for language in RECIPIENTS:
        parsed = confirmation(Reply("tentative", 2, interpreter_language=text), language, details=hostile)
        assert parsed["Bcc"] is None
        assert "<script>" not in body(parsed, "html")
