"""The notifications service against a real broker, database and SMTP server.

After publishing events whose effect must be *nothing* (a repeated invitation), waiting until some
state shows up proves nothing: it may show up before those events are even read. Those tests wait
until the service's consumer group has committed past them (``caught_up``), that is, until they
were handled, and only then look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from icalendar import Calendar

from notifications import mail, sending
from notifications.app import build
from notifications.personal_links import LinkKeyMissing
from notifications.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared import links
from quartier_shared.events import (
    ACTORS_TOPIC,
    ANSWERS_TOPIC,
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    DEAD_LETTER_TOPIC,
    DELIVERIES_TOPIC,
    INVITATIONS_TOPIC,
    Envelope,
    Event,
)
from tests.helpers import (
    caught_up,
    envelope_of,
    envelopes,
    eventually,
    outbox_empty,
    publish,
    publish_raw,
    read_mails,
    read_to_end,
    read_topic,
    retired_actor_registered,
    running,
    settings_for,
)
from tests.unit.notifications.fakes import CONFERENCE, actor, answer, invitation, resent

GROUP = "notifications"  # the service's consumer group


@pytest.fixture
def maildir(smtp_sink: tuple[int, Path]) -> Path:
    return smtp_sink[1]


@pytest.fixture
def app(infra: Infrastructure, database_name: str) -> FastAPI:
    return service(infra, database_name)


def service(infra: Infrastructure, database: str, **overrides: Any) -> FastAPI:
    """The service with short SMTP retries, as the tests' environment would configure it."""
    quick: dict[str, Any] = {"smtp_max_attempts": 2, "smtp_backoff_seconds": 0.1}
    return build(settings_for(Settings, infra, database, **(quick | overrides)))


async def send(infra: Infrastructure, *events: Event) -> None:
    """Publish these events, as their producers would."""
    await publish(infra.kafka_bootstrap, [envelope_of(e) for e in events])


async def outcomes(infra: Infrastructure, count: int) -> list[Envelope]:
    """The outcomes on the deliveries topic, once there are at least ``count``."""
    return envelopes(await read_topic(infra.kafka_bootstrap, DELIVERIES_TOPIC, until=lambda r: len(r) >= count))


async def test_one_mail_per_invitation_even_when_the_event_comes_three_times(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    german, english = actor("gemeinde@example.org"), actor("club@example.org", language="en")
    to_german, to_english = invitation(german.actor_id), invitation(english.actor_id)
    issued = envelope_of(to_german)
    async with running(app):
        await send(infra, german, english)
        await publish(infra.kafka_bootstrap, [issued, envelope_of(to_english)])
        sent = await outcomes(infra, 2)
        # Redeliveries: each copy is published once everything before it was handled, so each comes
        # in a consumer batch of its own, as a redelivery after a restart would.
        for _ in range(2):
            await publish(infra.kafka_bootstrap, [issued])
            await eventually(lambda: caught_up(infra.kafka_bootstrap, GROUP, INVITATIONS_TOPIC))
        await eventually(lambda: outbox_empty(app))
        assert len(await read_to_end(infra.kafka_bootstrap, DELIVERIES_TOPIC)) == 2  # the copies caused none

    assert {e.payload["invitation_id"] for e in sent} == {to_german.invitation_id, to_english.invitation_id}
    assert {e.event_type for e in sent} == {"InvitationSent"}
    assert all(e.correlation_id == "test-correlation" for e in sent)
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
    assert event["ATTENDEE"].params["RSVP"] == "FALSE"


async def test_the_invitation_mail_carries_a_personal_link_the_answer_page_can_verify(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    club = actor("club@example.org", language="en")
    issued = invitation(club.actor_id)
    async with running(app):
        await send(infra, club, issued)
        await outcomes(infra, 1)
    (sent,) = read_mails(maildir)
    text, html = (sent.get_body(preferencelist=(kind,)).get_content() for kind in ("plain", "html"))  # type: ignore[union-attr]
    token = link_token(text)
    assert f'href="http://localhost:8002/rsvp/{token}"' in html  # the default PUBLIC_BASE_URL
    assert "Please answer through this link: http://localhost:8002/rsvp/" in text
    # Verified as the conferences service verifies it: with the stack's public key.
    claims = links.verify(token, links.load_public_key(infra.env()["LINK_VERIFY_KEY"]), now=CONFERENCE.starts_at)
    assert claims.invitation_id == issued.invitation_id
    assert claims.expires_at == CONFERENCE.ends_at


async def test_an_answer_yields_one_confirmation_however_often_it_comes_and_changes_no_invitation_status(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    person = actor("gemeinde@example.org")
    issued = invitation(person.actor_id)
    answered = envelope_of(answer(issued, "accepted", 2))
    async with running(app):
        await send(infra, person, issued)
        await outcomes(infra, 1)
        for _ in range(3):  # the event, and two copies of it (a replay, a duplicate)
            await publish(infra.kafka_bootstrap, [answered])
            await eventually(lambda: caught_up(infra.kafka_bootstrap, GROUP, ANSWERS_TOPIC))
        await eventually(lambda: outbox_empty(app))
        assert len(await read_to_end(infra.kafka_bootstrap, DELIVERIES_TOPIC)) == 1  # the invitation's only
        statuses = {d["_id"]: d["status"] async for d in app.state.runtime.db["deliveries"].find()}

    mails = read_mails(maildir)
    assert len(mails) == 2
    (confirmation,) = [m for m in mails if not m["Message-ID"].startswith("<invitation-")]
    assert confirmation["Message-ID"] == mail.confirmation_message_id(answered.event_id, "essen.example.org")
    assert confirmation["Subject"] == "Ihre Antwort: Integrationskonferenz Borbeck am 04.03.2031"
    text = confirmation.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Ihre Antwort: Zusage, 2 Personen" in text
    assert links.verify(
        link_token(text), links.load_public_key(infra.env()["LINK_VERIFY_KEY"]), now=CONFERENCE.starts_at
    )
    assert statuses[f"confirmation:{answered.event_id}"] == "sent"


async def test_a_resend_is_sent_again_as_a_mail_of_its_own_and_raises_its_outcome(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    person = actor("gemeinde@example.org")
    issued = invitation(person.actor_id)
    async with running(app):
        await send(infra, person, issued)
        await outcomes(infra, 1)
        await send(infra, resent(issued, 1))
        found = await outcomes(infra, 2)
        await send(infra, resent(issued, 1))  # the same resend again: the same mail, sent once
        await eventually(lambda: caught_up(infra.kafka_bootstrap, GROUP, INVITATIONS_TOPIC))
        await eventually(lambda: outbox_empty(app))
        assert len(await read_to_end(infra.kafka_bootstrap, DELIVERIES_TOPIC)) == 2

    ids = [
        f"<invitation-{issued.invitation_id}@essen.example.org>",
        f"<invitation-{issued.invitation_id}.resend-1@essen.example.org>",
    ]
    assert [e.payload["message_id"] for e in found] == ids
    assert sorted(m["Message-ID"] for m in read_mails(maildir)) == sorted(ids)


async def test_without_a_link_signing_key_the_service_refuses_to_start(
    infra: Infrastructure, database_name: str
) -> None:
    app = service(infra, database_name, link_signing_key=None)
    with pytest.raises(LinkKeyMissing, match="LINK_SIGNING_KEY is not set"):
        async with running(app):
            pass


def link_token(text: str) -> str:
    """The token of the one personal link in a mail's text."""
    (token,) = {word.split("/rsvp/", 1)[1] for word in text.split() if "/rsvp/" in word}
    return token


async def test_permanent_rejection_fails_with_the_reason_and_consent_is_respected(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    rejected, opted_out = actor("rejected@example.org"), actor("quiet@example.org", consent=False)
    async with running(app, infra.auth_headers("operator")) as client:
        await send(infra, rejected, opted_out)
        await send(infra, invitation(rejected.actor_id), invitation(opted_out.actor_id))
        found = await outcomes(infra, 2)
        # What operators see, one delivery per page.
        first = await client.get("/deliveries", params={"conference_id": CONFERENCE.conference_id, "limit": 1})
        second = await client.get(first.links["next"]["url"])
        assert [d["status"] for d in first.json() + second.json()] == ["failed", "failed"]
        assert first.json()[0]["id"] < second.json()[0]["id"] and "next" not in second.links
    failed = {e.payload["actor_id"]: e.payload["reason"] for e in found if e.event_type == "InvitationFailed"}
    assert failed[rejected.actor_id].startswith("SMTP 550")
    assert "consent" in failed[opted_out.actor_id]
    assert read_mails(maildir) == []


async def test_a_mail_that_cannot_be_made_does_not_hold_back_the_others_or_make_them_resend(
    infra: Infrastructure, database_name: str, maildir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while one mail is made still lets the other mails of its claim finish
    and have their outcomes recorded, so the retries that follow send none of them again."""
    real_render = mail.render_invitation

    def render(**kwargs: Any) -> Any:
        if kwargs["recipient"].email == "kaputt@example.org":
            raise RuntimeError("this mail cannot be made")
        return real_render(**kwargs)

    monkeypatch.setattr(sending, "render_invitation", render)
    app = service(infra, database_name, handler_max_attempts=2, handler_backoff_seconds=0.1)
    good, also_good, broken = actor("eins@example.org"), actor("zwei@example.org"), actor("kaputt@example.org")
    issued = [invitation(a.actor_id) for a in (good, also_good, broken)]
    async with running(app):
        await send(infra, good, also_good, broken)
        await send(infra, *issued)
        dead = await read_topic(infra.kafka_bootstrap, DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 1)
        found = await outcomes(infra, 2)
        await eventually(lambda: outbox_empty(app))
        statuses = {d["actor_id"]: d["status"] async for d in app.state.runtime.db["deliveries"].find()}

    assert [r.key for r in dead] == [issued[2].invitation_id.encode()]
    assert {e.payload["actor_id"] for e in found if e.event_type == "InvitationSent"} == {
        good.actor_id,
        also_good.actor_id,
    }
    assert statuses[good.actor_id] == statuses[also_good.actor_id] == "sent"
    assert statuses[broken.actor_id] != "sent"
    assert sorted(m["To"].addresses[0].addr_spec for m in read_mails(maildir)) == [
        "eins@example.org",
        "zwei@example.org",
    ]


async def test_an_internationalised_address_is_sent_with_smtputf8(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    jurgen = actor("jürgen@beispiel.example.org")
    async with running(app):
        await send(infra, jurgen, invitation(jurgen.actor_id))
        found = await outcomes(infra, 1)
    assert [e.event_type for e in found] == ["InvitationSent"]
    (raw,) = raw_mails(maildir)
    assert f'To: "{jurgen.name}" <jürgen@beispiel.example.org>' in raw.decode("utf-8")


async def test_invitation_before_the_contact_waits_for_it(app: FastAPI, infra: Infrastructure, maildir: Path) -> None:
    newcomer = actor("neu@example.org")
    async with running(app):
        await send(infra, invitation(newcomer.actor_id))
        deliveries = app.state.runtime.db["deliveries"]

        async def waiting() -> bool:
            return await deliveries.count_documents({"status": "waiting_for_contact"}) == 1

        await eventually(waiting)
        await send(infra, newcomer)
        await outcomes(infra, 1)
    assert len(read_mails(maildir)) == 1


async def test_malformed_messages_go_to_the_dead_letter_topic_and_the_partition_moves_on(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    recipient = actor("weiter@example.org")
    future_version = envelope_of(invitation(recipient.actor_id)).model_copy(update={"event_version": "2.0"})
    poison = [b"\x00\xffnot json", b'{"event_type": "InvitationIssued"}', future_version.model_dump_json().encode()]
    async with running(app):
        for value in poison:
            await publish_raw(infra.kafka_bootstrap, INVITATIONS_TOPIC, value, key=b"same-key")
        await send(infra, recipient, invitation(recipient.actor_id))
        dead = await read_topic(infra.kafka_bootstrap, DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 3)
        await outcomes(infra, 1)
    headers = [dict(r.headers) for r in dead]
    assert all(h["dlq.original_topic"] == INVITATIONS_TOPIC.encode() for h in headers)
    assert all(h["dlq.service"] == b"notifications" for h in headers)
    assert {h["dlq.error_class"] for h in headers} == {b"ValidationError", b"UnknownEventVersion"}
    assert sorted(int(h["dlq.offset"]) for h in headers) == [0, 1, 2]
    assert dead[0].value == poison[0]  # the original bytes, to replay after a fix
    assert len(read_mails(maildir)) == 1


async def test_a_contact_that_fails_goes_to_the_contact_dead_letters_and_retired_actor_events_are_skipped(
    app: FastAPI, infra: Infrastructure, maildir: Path
) -> None:
    """A contact event that cannot be read goes to quartier.contacts.dead-letters (it holds a name
    and an address), not to quartier.dead-letters; an actor event of the retired version 1 is
    skipped: no contact made from it, no dead letter."""
    broken = actor("kaputt@example.org")
    unreadable = envelope_of(broken).model_copy(update={"payload": {**broken.model_dump(), "language": "xx"}})
    retired = retired_actor_registered("IV", "Alte Fassung e.V.", "alte-fassung@example.org")
    recipient = actor("danach@example.org")
    async with running(app):
        await publish(infra.kafka_bootstrap, [retired])
        await publish_raw(infra.kafka_bootstrap, CONTACTS_TOPIC, unreadable.model_dump_json().encode(), key=b"x")
        await send(infra, recipient, invitation(recipient.actor_id))
        await outcomes(infra, 1)  # the contact partition moved on
        await eventually(lambda: caught_up(infra.kafka_bootstrap, GROUP, ACTORS_TOPIC, CONTACTS_TOPIC))
        contacts = app.state.runtime.db["contacts"]
        assert await contacts.find_one({"_id": retired.aggregate_id}) is None
        assert await contacts.find_one({"_id": broken.actor_id}) is None

    (dead,) = [r for r in await read_to_end(infra.kafka_bootstrap, CONTACTS_DEAD_LETTER_TOPIC) if r.key == b"x"]
    headers = dict(dead.headers)
    assert headers["dlq.original_topic"] == CONTACTS_TOPIC.encode() and headers["dlq.error_class"] == b"ValidationError"
    assert b"kaputt" not in b"".join(headers.values())  # the reason names the field, not the data
    assert dead.value == unreadable.model_dump_json().encode()  # the original, to replay after a fix
    elsewhere = await read_to_end(infra.kafka_bootstrap, DEAD_LETTER_TOPIC)
    assert not [r for r in elsewhere if r.key in (b"x", retired.aggregate_id.encode())]
    assert len(read_mails(maildir)) == 1


def raw_mails(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(folder.glob("*.eml"))]
