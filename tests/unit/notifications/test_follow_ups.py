"""Updates, cancellations and reminders on in-memory fakes: a mail only after the invitation went
out, the pending invitation taking the newer details instead, a cancellation that stops what has
not gone out (a claim in flight included), one mail per event however often it comes, and nothing
once the conference has started."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Sequence
from datetime import timedelta

import pytest
from icalendar import Calendar
from structlog.testing import capture_logs

from notifications.domain import Delivery, DeliveryStatus, HandOver, Lease
from notifications.mail import OutgoingMail
from notifications.sending import CANCELLED, STARTED, UNREACHABLE
from quartier_shared.events import InvitationFailed, InvitationIssued, InvitationSent
from tests.unit.notifications.fakes import (
    CONFERENCE,
    POLICY,
    FakeMailer,
    Notifications,
    actor,
    cancelled,
    invitation,
    reminded,
    updated,
)
from tests.unit.notifications.test_handlers import invited, text_of

NEW_TITLE = "Stadtteilkonferenz Borbeck"


def calendar_of(mail: OutgoingMail) -> Calendar:
    parsed = email.message_from_bytes(mail.data, policy=email.policy.default)
    (part,) = [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_content())


def kinds(mails: Sequence[OutgoingMail]) -> list[str]:
    """What each mail is, by its Message-ID: invitation, update, cancellation, reminder."""
    return [m.message_id[1:].split("-", 1)[0] for m in mails]


# --- updates ----------------------------------------------------------------------------------------


async def test_an_update_of_a_sent_invitation_is_mailed_once_with_what_changed() -> None:
    service = Notifications()
    issued = await invited(service)
    change = updated(issued, title=NEW_TITLE)

    await service.on_updates(change, change)  # two copies in one batch
    await service.on_updates(change)  # and a replay

    assert kinds(service.mailer.sent) == ["invitation", "update"]
    mail = service.mailer.sent[1]
    assert mail.message_id == f"<update-{issued.invitation_id}.seq-1@essen.example.org>"
    assert f"Veranstaltung: bisher „{CONFERENCE.title}“, jetzt „{NEW_TITLE}“" in text_of(mail)
    event = calendar_of(mail).walk("VEVENT")[0]
    assert event.decoded("SEQUENCE") == 1 and str(event["SUMMARY"]) == NEW_TITLE
    assert len(service.events(InvitationSent)) == 1  # the invitation's own only
    assert service.delivery(f"update:{issued.invitation_id}:seq-1").status is DeliveryStatus.SENT


async def test_each_change_is_a_mail_of_its_own() -> None:
    service = Notifications()
    issued = await invited(service)

    await service.on_updates(updated(issued, sequence=1, title=NEW_TITLE))
    await service.on_updates(updated(issued, sequence=2, title="Dritter Titel"))

    assert kinds(service.mailer.sent) == ["invitation", "update", "update"]


async def test_an_update_before_the_invitation_went_out_refreshes_it_and_sends_no_update() -> None:
    service = Notifications()
    newcomer = actor("neu@example.org")
    issued = invitation(newcomer.actor_id)
    await service.on_invitations(issued)  # waits for its contact
    await service.on_updates(updated(issued, title=NEW_TITLE))
    assert service.mailer.sent == []

    await service.on_actor(newcomer)

    (mail,) = service.mailer.sent
    assert kinds([mail]) == ["invitation"]
    event = calendar_of(mail).walk("VEVENT")[0]
    assert event.decoded("SEQUENCE") == 1 and str(event["SUMMARY"]) == NEW_TITLE
    assert NEW_TITLE in text_of(mail)
    assert len(service.events(InvitationSent)) == 1


async def test_an_update_that_finds_no_invitation_stored_sends_the_invitation_with_the_newer_details() -> None:
    """Its InvitationIssued, in the same consumer batch, may not be stored yet: it finds the
    invitation stored before, and nothing more is sent."""
    service = Notifications()
    person = actor("ada@example.org")
    await service.on_actor(person)
    issued = invitation(person.actor_id)

    await service.on_updates(updated(issued, title=NEW_TITLE))
    await service.on_invitations(issued)

    (mail,) = service.mailer.sent
    assert kinds([mail]) == ["invitation"] and NEW_TITLE in text_of(mail)


async def test_no_update_for_an_invitation_that_failed_for_good() -> None:
    service = Notifications()
    issued = invitation(actor("quiet@example.org").actor_id)
    await service.on_actor(actor("quiet@example.org", consent=False))
    await service.on_invitations(issued)

    await service.on_updates(updated(issued, title=NEW_TITLE))

    assert service.mailer.sent == []
    assert [e.payload["reason"] for e in service.events(InvitationFailed)] == [UNREACHABLE]


# --- cancellations ------------------------------------------------------------------------------------


async def test_a_cancellation_of_a_sent_invitation_is_mailed_once() -> None:
    service = Notifications()
    issued = await invited(service)
    cancel = cancelled(issued)

    await service.on_cancellations(cancel, cancel)
    await service.on_cancellations(cancel)

    assert kinds(service.mailer.sent) == ["invitation", "cancellation"]
    calendar = calendar_of(service.mailer.sent[1])
    assert str(calendar["METHOD"]) == "CANCEL"
    assert calendar.walk("VEVENT")[0].decoded("SEQUENCE") == 1
    assert "Grund: Der Saal ist nicht verfügbar" in text_of(service.mailer.sent[1])


async def test_a_cancellation_before_the_invitation_went_out_means_nothing_is_ever_sent() -> None:
    service = Notifications()
    newcomer = actor("neu@example.org")
    issued = invitation(newcomer.actor_id)
    await service.on_invitations(issued)  # waits for its contact
    await service.on_updates(updated(issued, title=NEW_TITLE))

    await service.on_cancellations(cancelled(issued))
    await service.on_actor(newcomer)  # the contact arrives: still nothing
    await service.on_invitations(issued)  # and a redelivery of the invitation neither
    await service.on_reminders(reminded(issued))

    assert service.mailer.sent == []
    assert service.status(issued) is DeliveryStatus.CANCELLED
    assert service.events(InvitationSent) == [] and service.events(InvitationFailed) == []


async def test_a_cancellation_before_its_invitation_is_stored_keeps_that_invitation_from_going_out() -> None:
    service = Notifications()
    person = actor("ada@example.org")
    await service.on_actor(person)
    issued = invitation(person.actor_id)

    await service.on_cancellations(cancelled(issued))  # handled before the InvitationIssued of its batch
    await service.on_invitations(issued)

    assert service.mailer.sent == []
    assert service.status(issued) is DeliveryStatus.CANCELLED


async def test_a_claim_in_flight_cannot_send_an_invitation_once_the_cancellation_is_recorded() -> None:
    """The cancellation is recorded after the invitation was claimed, before it is handed to the
    SMTP server: the claim records it cancelled and sends nothing, and no outcome event is raised.
    (A claim of stored deliveries: here the invitation waited for its contact.)"""
    service = Notifications()
    person = actor("ada@example.org")
    issued = invitation(person.actor_id)
    await service.on_invitations(issued)  # stored, waiting for the contact
    store = service.uow.fake_deliveries
    hand_over = store.hand_over

    async def cancelled_meanwhile(ids: Sequence[str], token: str) -> HandOver:
        await store.cancel_unsent([issued.invitation_id], CANCELLED, service.clock.now())
        return await hand_over(ids, token)

    store.hand_over = cancelled_meanwhile  # type: ignore[method-assign]
    await service.on_actor(person)  # the contact arrives: its waiting invitation is claimed
    store.hand_over = hand_over  # type: ignore[method-assign]
    await service.on_cancellations(cancelled(issued))

    assert service.mailer.sent == []
    assert service.delivery(f"invitation:{issued.invitation_id}").reason == CANCELLED
    assert service.status(issued) is DeliveryStatus.CANCELLED
    assert service.events(InvitationSent) == [] and service.events(InvitationFailed) == []


async def test_a_new_invitation_is_stored_handed_over_so_a_racing_cancellation_follows_it() -> None:
    """New deliveries are stored handed over (their sending follows at once): a cancellation
    recorded between the two finds the invitation possibly sent, and follows it."""
    service = Notifications()
    person = actor("ada@example.org")
    await service.on_actor(person)
    issued = invitation(person.actor_id)
    store = service.uow.fake_deliveries
    add_claimed = store.add_claimed

    async def cancelled_meanwhile(deliveries: Sequence[Delivery], lease: Lease) -> list[Delivery]:
        stored = await add_claimed(deliveries, lease)
        await store.cancel_unsent([issued.invitation_id], CANCELLED, service.clock.now())
        return stored

    store.add_claimed = cancelled_meanwhile  # type: ignore[method-assign]
    await service.on_invitations(issued)
    store.add_claimed = add_claimed  # type: ignore[method-assign]
    await service.on_cancellations(cancelled(issued))

    assert kinds(service.mailer.sent) == ["invitation", "cancellation"]
    assert service.status(issued) is DeliveryStatus.SENT
    assert len(service.events(InvitationSent)) == 1


async def test_an_invitation_handed_over_before_the_cancellation_is_followed_by_the_cancellation() -> None:
    """Once handed to the SMTP server it may have gone out: the cancellation waits for its outcome
    and then follows it."""
    service = Notifications()
    person = actor("ada@example.org")
    await service.on_actor(person)
    issued = invitation(person.actor_id)
    mailer = service.mailer
    send = mailer.send

    cancelling: list[asyncio.Task[None]] = []

    async def cancellation_while_at_the_smtp_server(mail: OutgoingMail) -> None:
        if kinds([mail]) == ["invitation"]:
            cancelling.append(asyncio.create_task(service.on_cancellations(cancelled(issued))))
            for _ in range(5):  # the cancellation is recorded, and waits for this mail's outcome
                await asyncio.sleep(0)
            assert service.uow.fake_deliveries.rows[f"invitation:{issued.invitation_id}"].cancelled
        await send(mail)

    service.mailer.send = cancellation_while_at_the_smtp_server  # type: ignore[method-assign]
    await service.on_invitations(issued)
    await cancelling[0]

    assert kinds(mailer.sent) == ["invitation", "cancellation"]
    assert service.status(issued) is DeliveryStatus.SENT
    assert service.clock.waited() < timedelta(seconds=POLICY.lease_seconds)  # waited for the outcome, not the lease


async def test_an_invitation_handed_over_by_a_claim_that_then_died_is_sent_again_then_cancelled() -> None:
    """After a crash between the SMTP server and the record, the invitation may have gone out: the
    cancellation takes it over once its lease ran out, sends it again (the same Message-ID), as a
    crash does with every mail it left unrecorded, and follows it: never a cancellation alone."""
    service = Notifications()
    person = actor("ada@example.org")
    await service.on_actor(person)
    issued = invitation(person.actor_id)
    store = service.uow.fake_deliveries
    delivery_id = f"invitation:{issued.invitation_id}"

    async def crash(*args: object) -> set[str]:
        raise RuntimeError("the instance died before its outcomes were recorded")

    log = service.uow.fake_outcomes
    log.add = crash  # type: ignore[assignment,method-assign]
    with pytest.raises(RuntimeError, match="died"):
        await asyncio.wait_for(service.on_invitations(issued), timeout=1)
    del log.add
    assert store.rows[delivery_id].handed is not None and store.status(delivery_id) is DeliveryStatus.SENDING

    await service.on_cancellations(cancelled(issued))

    assert kinds(service.mailer.sent) == ["invitation", "invitation", "cancellation"]
    assert service.mailer.sent[0].message_id == service.mailer.sent[1].message_id
    assert store.status(delivery_id) is DeliveryStatus.SENT


# --- reminders ----------------------------------------------------------------------------------------


async def test_one_reminder_per_reminder_id_of_a_sent_invitation() -> None:
    service = Notifications()
    issued = await invited(service)
    first, second = reminded(issued, "please_answer", "P7D"), reminded(issued, "see_you", "P1D")

    await service.on_reminders(first, first)
    await service.on_reminders(first, second)

    assert kinds(service.mailer.sent) == ["invitation", "reminder", "reminder"]
    subjects = [email.message_from_bytes(m.data, policy=email.policy.default)["Subject"] for m in service.mailer.sent]
    assert subjects[1:] == ["Erinnerung: Integrationskonferenz Borbeck am 04.03.2031"] * 2
    assert "Erinnerung: bitte antworten Sie" in text_of(service.mailer.sent[1])
    assert "Erinnerung: wir freuen uns" in text_of(service.mailer.sent[2])


async def test_no_reminder_before_the_invitation_went_out_after_a_cancellation_or_without_consent() -> None:
    service = Notifications()
    waiting = invitation(actor("neu@example.org").actor_id)
    await service.on_invitations(waiting)
    gone = await invited(service, "abgesagt@example.org")
    await service.on_cancellations(cancelled(gone))
    quiet = await invited(service, "quiet@example.org")
    await service.on_actor(actor("quiet@example.org", revision=2, consent=False))
    before = len(service.mailer.sent)

    await service.on_reminders(reminded(waiting), reminded(gone), reminded(quiet))

    assert len(service.mailer.sent) == before
    assert service.delivery(f"reminder:{quiet.invitation_id}:P7D").reason == UNREACHABLE


# --- after the start ---------------------------------------------------------------------------------


async def test_nothing_is_mailed_once_the_conference_has_started() -> None:
    service = Notifications()
    issued = await invited(service)
    late = invitation(actor("spaet@example.org").actor_id)
    await service.on_actor(actor("spaet@example.org"))
    service.clock.current = CONFERENCE.starts_at  # it starts now

    await service.on_updates(updated(issued, title=NEW_TITLE))
    await service.on_reminders(reminded(issued, "see_you", "P1D"))
    await service.on_cancellations(cancelled(issued))
    await service.on_invitations(late)

    assert kinds(service.mailer.sent) == ["invitation"]  # the one sent before the start
    for delivery_id in (
        f"update:{issued.invitation_id}:seq-1",
        f"reminder:{issued.invitation_id}:P1D",
        f"cancellation:{issued.invitation_id}:seq-1",
    ):
        assert (service.delivery(delivery_id).status, service.delivery(delivery_id).reason) == (
            DeliveryStatus.FAILED,
            STARTED,
        )
    # An invitation that could not go out before the start has failed: the conferences service hears it.
    assert [e.payload["reason"] for e in service.events(InvitationFailed)] == [STARTED]


async def test_the_start_is_the_latest_one_the_delivery_knows() -> None:
    """An invitation waiting for its contact that was moved earlier is not sent after the new start."""
    service = Notifications(FakeMailer())
    newcomer = actor("neu@example.org")
    issued: InvitationIssued = invitation(newcomer.actor_id)
    await service.on_invitations(issued)
    earlier = CONFERENCE.starts_at - timedelta(days=300)
    await service.on_updates(updated(issued, starts_at=earlier, ends_at=earlier + timedelta(hours=2)))
    service.clock.current = earlier + timedelta(minutes=1)

    await service.on_actor(newcomer)

    assert service.mailer.sent == []
    assert service.delivery(f"invitation:{issued.invitation_id}").reason == STARTED


async def test_the_follow_up_mails_log_ids_only() -> None:
    service = Notifications()
    with capture_logs() as logs:
        issued = await invited(service)
        await service.on_updates(updated(issued, title=NEW_TITLE))
        await service.on_reminders(reminded(issued))
        await service.on_cancellations(cancelled(issued, reason="Frau Beispiel ist krank"))
    assert {"update_sent", "reminder_sent", "cancellation_sent"} <= {entry["event"] for entry in logs}
    logged = repr(logs)
    assert "@example.org" not in logged and "Runder Tisch" not in logged and "Beispiel" not in logged
    assert "rsvp" not in logged and "eyJ" not in logged
