"""The notifications handlers on in-memory fakes: one mail per invitation however often the
broker delivers it, invitations that wait for their contact, opt-out, refusals and their reasons."""

from __future__ import annotations

import pytest

from notifications import handlers
from notifications.domain import DeliveryStatus
from notifications.sending import UNREACHABLE
from notifications.smtp import PermanentMailError, TemporaryMailError
from quartier_shared.events import ActorDeactivated, EventContext, InvitationFailed, InvitationSent
from tests.unit.notifications.fakes import CONFERENCE, ContactChange, FakeMailer, Notifications, actor, invitation


async def test_a_redelivered_invitation_sends_nothing() -> None:
    service = Notifications()
    ada = actor("ada@example.org")
    issued = invitation(ada.actor_id)
    await service.on_actor(ada)

    await service.on_invitations(issued, issued)  # two copies in one batch
    await service.on_invitations(issued)  # and one in a later batch, after the first was sent

    assert service.mailer.recipients() == ["ada@example.org"]
    assert len(service.events(InvitationSent)) == 1
    assert service.status(issued) is DeliveryStatus.SENT


async def test_an_invitation_before_its_contact_waits_and_goes_out_when_the_contact_arrives() -> None:
    service = Notifications()
    newcomer = actor("neu@example.org")
    issued = invitation(newcomer.actor_id)

    await service.on_invitations(issued)
    assert service.status(issued) is DeliveryStatus.WAITING_FOR_CONTACT
    assert service.mailer.sent == [] and service.uow.events == []

    (arrival,) = await service.on_actor(newcomer)
    assert service.mailer.recipients() == ["neu@example.org"]
    (sent,) = service.events(InvitationSent)
    assert sent.causation_id == arrival.envelope.event_id  # it answers the event that brought the contact
    assert service.status(issued) is DeliveryStatus.SENT


@pytest.mark.parametrize(
    "events",
    [
        [actor("quiet@example.org", consent=False)],
        [actor("quiet@example.org", active=False)],
        [actor("quiet@example.org"), ActorDeactivated(actor_id=actor("quiet@example.org").actor_id, revision=2)],
    ],
    ids=["no consent", "inactive", "deactivated later"],
)
async def test_an_unreachable_contact_gets_a_failed_outcome_and_no_mail(events: list[ContactChange]) -> None:
    service = Notifications()
    issued = invitation(events[0].actor_id)
    await service.on_actor(*events)

    await service.on_invitations(issued)

    assert service.mailer.sent == []
    (failed,) = service.events(InvitationFailed)
    assert failed.payload["reason"] == UNREACHABLE
    assert service.status(issued) is DeliveryStatus.FAILED


async def test_a_contact_that_withdrew_consent_while_its_invitation_waited_gets_no_mail() -> None:
    service = Notifications()
    issued = invitation(actor("quiet@example.org").actor_id)
    await service.on_invitations(issued)

    await service.on_actor(actor("quiet@example.org", consent=False))

    assert service.mailer.sent == []
    assert [e.payload["reason"] for e in service.events(InvitationFailed)] == [UNREACHABLE]


@pytest.mark.parametrize(
    "refusal",
    [
        PermanentMailError("SMTP 550: mailbox unavailable"),
        TemporaryMailError("SMTP 451: try again later (gave up after 5 attempts)"),
        PermanentMailError("SMTP 550: 5.1.1 <rejected@example.org>: address rejected; ask postmaster@x.example"),
    ],
    ids=["permanent", "retries used up", "naming addresses"],
)
async def test_a_refused_mail_records_invitation_failed_with_the_servers_reason(refusal: Exception) -> None:
    service = Notifications(FakeMailer(failures={"rejected@example.org": [refusal]}))
    rejected = actor("rejected@example.org")
    issued = invitation(rejected.actor_id)
    await service.on_actor(rejected)

    await service.on_invitations(issued)
    await service.on_invitations(issued)  # failed is final: a redelivery does not try again

    assert service.mailer.sent == []
    (failed,) = service.events(InvitationFailed)
    reason = str(refusal).replace("rejected@example.org", "<address>").replace("postmaster@x.example", "<address>")
    assert failed.payload["reason"] == reason and "@" not in reason
    assert failed.payload["invitation_id"] == issued.invitation_id
    assert service.uow.fake_deliveries.rows[f"invitation:{issued.invitation_id}"].delivery.reason == reason


async def test_contacts_only_move_forward_by_revision() -> None:
    service = Notifications()
    newer = actor("neu@example.org", revision=3, language="en")
    await service.on_actor(newer, actor("alt@example.org", revision=2), actor("neu@example.org", revision=2))
    await service.on_actor(ActorDeactivated(actor_id="never-seen", revision=5))

    contact = service.uow.fake_contacts.rows[newer.actor_id]
    assert (contact.email, contact.language, contact.revision) == ("neu@example.org", "en", 3)
    assert "never-seen" not in service.uow.fake_contacts.rows


async def test_deliveries_for_a_conference_are_read_through_the_unit_of_work() -> None:
    service = Notifications()
    contacts = [actor(f"{name}@example.org") for name in ("b", "a")]
    await service.on_actor(*contacts)
    await service.on_invitations(*(invitation(a.actor_id) for a in contacts))

    request = EventContext("notifications", "request-1")
    found = (await handlers.deliveries_for(CONFERENCE.conference_id, request, uow_factory=service.uow)).items
    elsewhere = (await handlers.deliveries_for("another-conference", request, uow_factory=service.uow)).items

    assert [d.id for d in found] == sorted(d.id for d in found) and len(found) == 2
    assert {d.status for d in found} == {DeliveryStatus.SENT}
    assert elsewhere == []
