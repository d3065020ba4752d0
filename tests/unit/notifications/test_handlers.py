"""The notifications handlers on in-memory fakes: one mail per invitation (and per resend number)
however often the broker delivers it, invitations that wait for their contact, opt-out, refusals
and their reasons; one confirmation per answer, and no personal data in the logs."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from structlog.testing import capture_logs

from notifications import handlers
from notifications.domain import DeliveryStatus
from notifications.mail import OutgoingMail, confirmation_message_id
from notifications.sending import UNREACHABLE
from notifications.smtp import PermanentMailError
from quartier_shared import links
from quartier_shared.events import (
    EventContext,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
    Language,
)
from tests.helpers import envelope_of
from tests.unit.notifications.fakes import (
    CONFERENCE,
    LINK_VERIFY_KEY,
    POLICY,
    PUBLIC_BASE_URL,
    ContactChange,
    FakeMailer,
    Notifications,
    actor,
    answer,
    invitation,
    resent,
)


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
        [actor("quiet@example.org"), actor("quiet@example.org", revision=2, active=False)],
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
        PermanentMailError("SMTP 550: 5.1.1 <rejected@example.org>: address rejected; ask postmaster@x.example"),
    ],
    ids=["permanent", "naming addresses"],  # a temporary refusal defers the mail: test_deferrals
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


async def test_the_contact_is_what_the_contact_event_says() -> None:
    """Name, address, language, consent, active and revision come from ``ContactChanged``, the
    only event with a name and an address; deactivation arrives as one with ``active`` false."""
    service = Notifications()
    changed = actor("ada@example.org", revision=2, language="en", consent=False)
    await service.on_actor(changed, actor("ada@example.org", revision=3, language="en", active=False))

    contact = service.uow.fake_contacts.rows[changed.actor_id]
    assert (contact.id, contact.name, contact.email, contact.language) == (
        changed.actor_id,
        "Runder Tisch Frintrop",
        "ada@example.org",
        "en",
    )
    assert (contact.consent_to_notifications, contact.active, contact.revision, contact.erased) == (
        True,
        False,
        3,
        False,
    )
    assert not contact.reachable


async def test_contacts_only_move_forward_by_revision() -> None:
    service = Notifications()
    newer = actor("neu@example.org", revision=3, language="en")
    await service.on_actor(newer, actor("alt@example.org", revision=2), actor("neu@example.org", revision=2))

    contact = service.uow.fake_contacts.rows[newer.actor_id]
    assert (contact.email, contact.language, contact.revision) == ("neu@example.org", "en", 3)


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


# --- resends --------------------------------------------------------------------------------------


async def test_each_resend_number_is_sent_once_as_a_mail_of_its_own_and_raises_its_outcome() -> None:
    service = Notifications()
    ada = actor("ada@example.org")
    issued = invitation(ada.actor_id)
    await service.on_actor(ada)
    await service.on_invitations(issued)

    await service.on_invitations(resent(issued, 1), resent(issued, 1))  # sent again, though sent before
    await service.on_invitations(resent(issued, 1), issued)  # the same mails again: nothing
    await service.on_invitations(resent(issued, 2))

    ids = [m.message_id for m in service.mailer.sent]
    base = f"invitation-{issued.invitation_id}"
    assert ids == [
        f"<{base}@essen.example.org>",
        f"<{base}.resend-1@essen.example.org>",
        f"<{base}.resend-2@essen.example.org>",
    ]
    sent = service.events(InvitationSent)
    assert [e.payload["message_id"] for e in sent] == ids  # the conferences service's status follows each
    assert len({e.event_id for e in sent}) == 3
    assert service.uow.fake_deliveries.status(f"invitation:{issued.invitation_id}:resend-2") is DeliveryStatus.SENT


async def test_a_resend_to_a_contact_that_withdrew_consent_fails_without_a_mail() -> None:
    service = Notifications()
    ada = actor("ada@example.org")
    issued = invitation(ada.actor_id)
    await service.on_actor(ada)
    await service.on_invitations(issued)
    await service.on_actor(actor("ada@example.org", revision=2, consent=False))

    await service.on_invitations(resent(issued, 1))

    assert len(service.mailer.sent) == 1
    (failed,) = service.events(InvitationFailed)
    assert failed.payload["reason"] == UNREACHABLE


# --- confirmations of answers -----------------------------------------------------------------------


async def invited(
    service: Notifications, email: str = "ada@example.org", language: Language = "de"
) -> InvitationIssued:
    """An actor whose invitation mail went out."""
    person = actor(email, language=language)
    issued = invitation(person.actor_id)
    await service.on_actor(person)
    await service.on_invitations(issued)
    return issued


async def test_an_answer_is_confirmed_once_however_often_its_event_comes_and_a_later_answer_again() -> None:
    service = Notifications()
    issued = await invited(service)
    first = envelope_of(answer(issued, "accepted", 2))

    await service.on_answers(first, first)  # two copies in one batch
    await service.on_answers(first)  # and a replay later
    assert len(service.mailer.sent) == 2  # the invitation and one confirmation

    later = envelope_of(answer(issued, "declined", 0))
    await service.on_answers(later)

    _, confirmed, changed = service.mailer.sent
    assert confirmed.recipient == changed.recipient == "ada@example.org"
    assert confirmed.message_id == confirmation_message_id(first.event_id, POLICY.mail_domain)
    assert changed.message_id == confirmation_message_id(later.event_id, POLICY.mail_domain)
    assert "Ihre Antwort: Zusage, 2 Personen" in text_of(confirmed)
    assert "Ihre Antwort: Absage" in text_of(changed)
    # A confirmation raises no outcome event: the invitation's status stays as it is.
    assert len(service.events(InvitationSent)) == 1 and service.events(InvitationFailed) == []
    assert service.uow.fake_deliveries.status(f"confirmation:{first.event_id}") is DeliveryStatus.SENT


async def test_a_confirmation_is_in_the_recipients_language_and_carries_a_link_that_verifies() -> None:
    service = Notifications()
    issued = await invited(service, "club@example.org", language="en")

    await service.on_answers(envelope_of(answer(issued, "accepted", 3, step_free_access=True)))

    text = text_of(service.mailer.sent[-1])
    assert "Your answer: accepted, 3 people, step-free access" in text
    token = text.split(f"{PUBLIC_BASE_URL}/rsvp/")[1].split()[0]
    claims = links.verify(token, LINK_VERIFY_KEY, now=CONFERENCE.starts_at)
    assert (claims.invitation_id, claims.expires_at) == (issued.invitation_id, CONFERENCE.ends_at)


@pytest.mark.parametrize(
    "change",
    [
        actor("ada@example.org", revision=2, consent=False),
        actor("ada@example.org", revision=2, active=False),
    ],
    ids=["consent withdrawn", "deactivated"],
)
async def test_no_confirmation_to_an_actor_who_no_longer_consents_or_is_inactive(change: ContactChange) -> None:
    service = Notifications()
    issued = await invited(service)
    await service.on_actor(change)

    await service.on_answers(envelope_of(answer(issued)))

    assert len(service.mailer.sent) == 1  # the invitation only
    assert service.events(InvitationFailed) == []  # and the invitation's status is not touched


async def test_an_answer_to_an_invitation_never_mailed_here_fails_after_the_others_are_confirmed() -> None:
    service = Notifications()
    issued = await invited(service)
    stranger = invitation(actor("fremd@example.org").actor_id)

    with pytest.raises(handlers.UnknownInvitation, match=stranger.invitation_id):
        await service.on_answers(envelope_of(answer(stranger)), envelope_of(answer(issued)))

    assert [m.recipient for m in service.mailer.sent] == ["ada@example.org", "ada@example.org"]


async def test_no_address_name_link_or_token_is_logged() -> None:
    service = Notifications(
        FakeMailer(failures={"rejected@example.org": [PermanentMailError("SMTP 550 rejected@example.org")]})
    )
    with capture_logs() as logs:
        issued = await invited(service)
        await service.on_answers(envelope_of(answer(issued)))
        await invited(service, "rejected@example.org")
    assert {entry["event"] for entry in logs} >= {"invitation_sent", "confirmation_sent", "invitation_failed"}
    logged = repr(logs)
    assert "@example.org" not in logged and "Runder Tisch" not in logged
    assert "rsvp" not in logged and ".ey" not in logged and "eyJ" not in logged  # JWTs start with eyJ


def text_of(mail: OutgoingMail) -> str:
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())
