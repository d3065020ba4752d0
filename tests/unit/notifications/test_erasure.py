"""Notifications: erasing an actor (GDPR Art. 17) on fakes. The contact keeps only its id, as
erased; deliveries not sent yet fail (an invitation's with its InvitationFailed); the confirmation
is stored with the change; and a replay of the actor's old events afterwards (registration,
update, its invitations) stores no name or address and sends no mail."""

from __future__ import annotations

from notifications.domain import Contact, Delivery, DeliveryStatus
from notifications.handlers import ERASED
from notifications.mail import invitation_message_id
from quartier_shared.events import (
    ActorErased,
    ActorErasureConfirmed,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
)
from tests.unit.notifications.fakes import POLICY, Notifications, actor, invitation

ADDRESS = "ada@example.org"


async def test_erasure_empties_the_contact_cancels_unsent_mail_and_confirms() -> None:
    service = Notifications()
    ada = actor(ADDRESS)
    mailed, waiting = invitation(ada.actor_id), invitation(ada.actor_id)
    await service.on_actor(ada)
    await service.on_invitations(mailed)
    other = actor("bob@example.org")
    for_other = invitation(other.actor_id)
    await service.on_invitations(for_other)  # bob's contact has not arrived: his mail waits
    # ada's second invitation waits too: stored before her contact existed, as after a restart.
    await service.uow.fake_deliveries.add_waiting([_delivery(waiting)])

    erased = ActorErased(actor_id=ada.actor_id, revision=2)
    await service.on_erased(erased)

    contact = await service.uow.contacts.get(ada.actor_id)
    assert contact == Contact(ada.actor_id, "", "", "de", False, False, 2, erased=True)
    assert service.status(mailed) is DeliveryStatus.SENT  # what went out stays a record, without an address
    assert service.status(waiting) is DeliveryStatus.FAILED
    [failed] = service.events(InvitationFailed)
    assert failed.payload["invitation_id"] == waiting.invitation_id and failed.payload["reason"] == ERASED
    assert service.status(for_other) is DeliveryStatus.WAITING_FOR_CONTACT  # another actor's: untouched
    [confirmed] = service.events(ActorErasureConfirmed)
    assert confirmed.payload == {**confirmed.payload, "actor_id": ada.actor_id, "service": "notifications"}

    await service.on_erased(erased)  # redelivered: nothing changes, the same confirmation again
    assert await service.uow.contacts.get(ada.actor_id) == contact
    assert len(service.events(InvitationFailed)) == 1
    confirmations = service.events(ActorErasureConfirmed)
    assert [c.event_id for c in confirmations] == [confirmed.event_id] * 2


async def test_a_replay_of_the_old_events_after_erasure_brings_nothing_back_and_sends_nothing() -> None:
    service = Notifications()
    ada = actor(ADDRESS)
    moved = ada.model_copy(update={"revision": 5, "email": "neu@example.org"})
    issued = invitation(ada.actor_id)
    await service.on_actor(ada)
    await service.on_invitations(issued)
    assert service.mailer.recipients() == [ADDRESS]

    await service.on_erased(ActorErased(actor_id=ada.actor_id, revision=2))
    # The whole log again, from the start, even an update with a higher revision than the erasure.
    await service.on_actor(ada, moved)
    await service.on_invitations(issued, invitation(ada.actor_id))

    assert service.mailer.recipients() == [ADDRESS]  # only the mail sent before the erasure
    contact = await service.uow.contacts.get(ada.actor_id)
    assert contact is not None and contact.erased and (contact.name, contact.email) == ("", "")
    assert len(service.events(InvitationSent)) == 1


async def test_an_actor_erased_before_its_contact_arrived_is_never_stored_or_mailed() -> None:
    service = Notifications()
    ada = actor(ADDRESS)
    await service.on_erased(ActorErased(actor_id=ada.actor_id, revision=2))
    await service.on_actor(ada)
    await service.on_invitations(invitation(ada.actor_id))
    assert service.mailer.sent == []
    contact = await service.uow.contacts.get(ada.actor_id)
    assert contact is not None and contact.erased and (contact.name, contact.email) == ("", "")


def _delivery(issued: InvitationIssued) -> Delivery:
    return Delivery.for_invitation(issued, invitation_message_id(issued.invitation_id, 0, POLICY.mail_domain))
