"""The notifications service against a real broker, database and SMTP server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from notifications import mail, sending
from notifications.app import build
from notifications.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.events import (
    DEAD_LETTER_TOPIC,
    DELIVERIES_TOPIC,
    INVITATIONS_TOPIC,
    ActorRegistered,
    ConferenceDetails,
    InvitationIssued,
    Venue,
)
from quartier_shared.outbox import pending_events
from tests.helpers import (
    envelope_of,
    envelopes,
    eventually,
    publish,
    publish_raw,
    read_mails,
    read_topic,
    running,
    settings_for,
)

CONFERENCE = ConferenceDetails(
    conference_id=str(uuid.uuid4()),
    district="IV",
    district_name="Borbeck",
    title="Integrationskonferenz Borbeck",
    starts_at=datetime(2031, 3, 4, 16, 0, tzinfo=UTC),
    ends_at=datetime(2031, 3, 4, 19, 0, tzinfo=UTC),
    timezone="Europe/Berlin",
    venue=Venue(name="Kulturzentrum Borbeck", address="Musterstraße 1, 45355 Essen"),
    agenda=["Begrüßung", "Arbeitsgruppen"],
)


def actor(email: str, language: str = "de", consent: bool = True) -> ActorRegistered:
    return ActorRegistered(
        actor_id=str(uuid.uuid4()),
        revision=1,
        name="Moschee-Gemeinde Altendorf",
        kind="migrant_organisation",
        districts=["IV"],
        email=email,
        language=language,
        consent_to_notifications=consent,
    )


def invitation(actor_id: str) -> InvitationIssued:
    return InvitationIssued(
        invitation_id=str(uuid.uuid4()),
        conference_id=CONFERENCE.conference_id,
        actor_id=actor_id,
        conference=CONFERENCE,
    )


def fast_settings(infra: Infrastructure, database: str) -> Settings:
    return settings_for(Settings, infra, database, smtp_max_attempts=2, smtp_backoff_seconds=0.1)


async def test_one_mail_per_invitation_even_when_the_event_comes_three_times(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    _, maildir = smtp_sink
    app = build(fast_settings(infra, database_name))
    german, english = actor("gemeinde@example.org"), actor("club@example.org", language="en")
    to_german, to_english = invitation(german.actor_id), invitation(english.actor_id)
    async with running(app):
        await publish(infra.kafka_bootstrap, [envelope_of(german), envelope_of(english)])
        issued = envelope_of(to_german)
        await publish(infra.kafka_bootstrap, [issued, envelope_of(to_english), issued, issued])
        records = await read_topic(infra.kafka_bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= 2)
        sent = envelopes(records, "InvitationSent")
        assert {e.payload["invitation_id"] for e in sent} == {to_german.invitation_id, to_english.invitation_id}
        assert all(e.correlation_id == "test-correlation" for e in sent)
        await eventually(lambda: _outbox_empty(app))

    mails = read_mails(maildir)
    assert len(mails) == 2
    by_recipient = {m["To"].addresses[0].addr_spec: m for m in mails}
    assert by_recipient["gemeinde@example.org"]["Subject"].startswith("Einladung: Integrationskonferenz Borbeck")
    assert by_recipient["club@example.org"]["Subject"].startswith("Invitation: Integrationskonferenz Borbeck")
    german_mail = by_recipient["gemeinde@example.org"]
    assert german_mail["Message-ID"].strip() == f"<invitation-{to_german.invitation_id}@essen.example.org>"
    text = german_mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "17:00" in text and "Kulturzentrum Borbeck" in text and "Arbeitsgruppen" in text
    calendar_part = next(p for p in german_mail.walk() if p.get_content_type() == "text/calendar")
    calendar = Calendar.from_ical(bytes(calendar_part.get_payload(decode=True)))
    assert calendar["METHOD"] == "REQUEST"
    event = calendar.walk("VEVENT")[0]
    assert str(event["UID"]) == f"conference-{CONFERENCE.conference_id}@essen.example.org"
    assert event.decoded("DTSTART") == CONFERENCE.starts_at
    assert str(event["ATTENDEE"]) == "mailto:gemeinde@example.org"


async def test_permanent_rejection_fails_with_the_reason_and_consent_is_respected(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    _, maildir = smtp_sink
    app = build(fast_settings(infra, database_name))
    rejected, opted_out = actor("rejected@example.org"), actor("quiet@example.org", consent=False)
    async with running(app):
        await publish(infra.kafka_bootstrap, [envelope_of(rejected), envelope_of(opted_out)])
        await publish(
            infra.kafka_bootstrap,
            [envelope_of(invitation(rejected.actor_id)), envelope_of(invitation(opted_out.actor_id))],
        )
        records = await read_topic(infra.kafka_bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= 2)
        failed = {e.payload["actor_id"]: e.payload["reason"] for e in envelopes(records, "InvitationFailed")}
        assert failed[rejected.actor_id].startswith("SMTP 550")
        assert "consent" in failed[opted_out.actor_id]
    assert read_mails(maildir) == []


async def test_a_mail_that_cannot_be_made_does_not_hold_back_the_others_or_make_them_resend(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while one mail is made still lets the other mails of its claim finish
    and have their outcomes recorded, so the retries that follow send none of them again."""
    _, maildir = smtp_sink
    real_render = mail.render_invitation

    def render(**kwargs: Any) -> Any:
        if kwargs["recipient"].email == "kaputt@example.org":
            raise RuntimeError("this mail cannot be made")
        return real_render(**kwargs)

    monkeypatch.setattr(sending, "render_invitation", render)
    app = build(settings_for(Settings, infra, database_name, handler_max_attempts=2, handler_backoff_seconds=0.1))
    good, also_good, broken = actor("eins@example.org"), actor("zwei@example.org"), actor("kaputt@example.org")
    issued = [invitation(a.actor_id) for a in (good, also_good, broken)]
    async with running(app):
        await publish(infra.kafka_bootstrap, [envelope_of(a) for a in (good, also_good, broken)])
        await publish(infra.kafka_bootstrap, [envelope_of(i) for i in issued])
        dead = await read_topic(infra.kafka_bootstrap, DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 1)
        records = await read_topic(infra.kafka_bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= 2)
        await eventually(lambda: _outbox_empty(app))
        statuses = {d["actor_id"]: d["status"] async for d in app.state.runtime.db["deliveries"].find()}

    assert [r.key for r in dead] == [issued[2].invitation_id.encode()]
    assert {e.payload["actor_id"] for e in envelopes(records, "InvitationSent")} == {good.actor_id, also_good.actor_id}
    assert statuses[good.actor_id] == statuses[also_good.actor_id] == "sent"
    assert statuses[broken.actor_id] != "sent"
    assert sorted(m["To"].addresses[0].addr_spec for m in read_mails(maildir)) == [
        "eins@example.org",
        "zwei@example.org",
    ]


async def test_an_internationalised_address_is_sent_with_smtputf8(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    _, maildir = smtp_sink
    app = build(fast_settings(infra, database_name))
    jurgen = actor("jürgen@beispiel.example.org")
    async with running(app):
        await publish(infra.kafka_bootstrap, [envelope_of(jurgen), envelope_of(invitation(jurgen.actor_id))])
        records = await read_topic(infra.kafka_bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= 1)
    assert [e.event_type for e in envelopes(records)] == ["InvitationSent"]
    (raw,) = [path.read_bytes() for path in maildir.glob("*.eml")]
    assert 'To: "Moschee-Gemeinde Altendorf" <jürgen@beispiel.example.org>' in raw.decode("utf-8")


async def test_invitation_before_the_contact_waits_for_it(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    _, maildir = smtp_sink
    app = build(fast_settings(infra, database_name))
    newcomer = actor("neu@example.org")
    async with running(app):
        await publish(infra.kafka_bootstrap, [envelope_of(invitation(newcomer.actor_id))])
        db = app.state.runtime.db

        async def waiting() -> bool:
            return await db["deliveries"].count_documents({"status": "waiting_for_contact"}) == 1

        await eventually(waiting)
        await publish(infra.kafka_bootstrap, [envelope_of(newcomer)])
        await read_topic(infra.kafka_bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= 1)
    assert len(read_mails(maildir)) == 1


async def test_malformed_messages_go_to_the_dead_letter_topic_and_the_partition_moves_on(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    _, maildir = smtp_sink
    app = build(fast_settings(infra, database_name))
    recipient = actor("weiter@example.org")
    future_version = envelope_of(invitation(recipient.actor_id)).model_copy(update={"event_version": "2.0"})
    async with running(app):
        key = b"same-key"
        await publish_raw(infra.kafka_bootstrap, INVITATIONS_TOPIC, b"\x00\xffnot json", key=key)
        await publish_raw(infra.kafka_bootstrap, INVITATIONS_TOPIC, b'{"event_type": "InvitationIssued"}', key=key)
        await publish_raw(infra.kafka_bootstrap, INVITATIONS_TOPIC, future_version.model_dump_json().encode(), key=key)
        await publish(infra.kafka_bootstrap, [envelope_of(recipient), envelope_of(invitation(recipient.actor_id))])
        dead = await read_topic(infra.kafka_bootstrap, DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 3)
        await read_topic(infra.kafka_bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= 1)
    headers = [dict(r.headers) for r in dead]
    assert all(h["dlq.original_topic"] == INVITATIONS_TOPIC.encode() for h in headers)
    assert all(h["dlq.service"] == b"notifications" for h in headers)
    assert {h["dlq.error_class"] for h in headers} == {b"ValidationError", b"UnknownEventVersion"}
    assert sorted(int(h["dlq.offset"]) for h in headers) == [0, 1, 2]
    assert dead[0].value == b"\x00\xffnot json"  # the original bytes, to replay after a fix
    assert len(read_mails(maildir)) == 1


async def _outbox_empty(app: object) -> bool:
    db = app.state.runtime.db  # type: ignore[attr-defined]
    return bool(await pending_events(db) == 0)
