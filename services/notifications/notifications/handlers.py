"""The use cases of the notifications service: the events it consumes, and the HTTP query.
Plain functions, wired in app.py and called by api.py and the consumer.

Every event handler is idempotent: a contact only moves forward by actor revision, and each mail
has one delivery record, which the sending workflow (``sending``) never sends twice. A redelivered
event therefore sends nothing. The mails and their ids:
- InvitationIssued: the invitation, one mail per invitation and resend number (a coordinator's
  resend is a new mail; the same event again is the same mail);
- InvitationAnswered: its confirmation, one mail per answer event (a replayed answer is the same
  mail; a later answer, a new event, is a new one). It is written with the conference as the
  invitation's mail last showed it, so an answer to an invitation this service never mailed fails
  (and, after the consumer's retries, goes to the dead-letter topic, to be replayed).
The query reads through the unit of work's repositories and commits nothing.
"""

from __future__ import annotations

from quartier_shared.consumer import Received
from quartier_shared.events import ActorDeactivated, ActorSnapshot, EventContext, InvitationAnswered, InvitationIssued
from quartier_shared.pagination import FIRST_PAGE, Page, PageRequest, page_of

from .domain import Contact, Delivery
from .mail import confirmation_message_id, invitation_message_id
from .sending import SYSTEM_CLOCK, Clock, Mailer, SendingPolicy, send_new, send_waiting_for
from .unit_of_work import UnitOfWorkFactory

# --- HTTP -----------------------------------------------------------------------------------------


async def deliveries_for(
    conference_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory, page: PageRequest = FIRST_PAGE
) -> Page[Delivery]:
    """One page of the mails of a conference, by id, for operators."""
    async with uow_factory(context).for_reading() as uow:
        found = await uow.deliveries.for_conference(conference_id, page)
    return page_of(found, page, lambda delivery: (delivery.id, delivery.id))


# --- consumed events ------------------------------------------------------------------------------


async def update_contact(
    received: Received[ActorSnapshot | ActorDeactivated],
    *,
    uow_factory: UnitOfWorkFactory,
    mailer: Mailer,
    policy: SendingPolicy,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Keep the contact copy current; send the invitations that waited for it."""
    event = received.event
    # No events to store with a contact, and an actor's events come in order: a plain write.
    contacts = uow_factory(received.context).without_transaction().contacts
    contact = Contact.after(event, await contacts.get(event.actor_id))
    if contact is None:
        return  # an older or repeated event
    await contacts.save(contact)
    await send_waiting_for(
        contact, received.context, uow_factory=uow_factory, mailer=mailer, policy=policy, clock=clock
    )


async def send_invitations(
    batch: list[Received[InvitationIssued]],
    *,
    uow_factory: UnitOfWorkFactory,
    mailer: Mailer,
    policy: SendingPolicy,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """One mail per invitation and resend number of the batch; the copies of an event within it
    count once."""
    deliveries: dict[str, Delivery] = {}
    contexts: dict[str, EventContext] = {}
    for item in batch:
        invitation = item.event
        delivery = Delivery.for_invitation(
            invitation, invitation_message_id(invitation.invitation_id, invitation.resend, policy.mail_domain)
        )
        deliveries.setdefault(delivery.id, delivery)
        contexts.setdefault(delivery.id, item.context)
    await send_new(
        list(deliveries.values()), contexts, uow_factory=uow_factory, mailer=mailer, policy=policy, clock=clock
    )


class UnknownInvitation(Exception):
    """An answer to an invitation whose mail this service does not know: nothing to confirm it from."""


async def send_confirmations(
    batch: list[Received[InvitationAnswered]],
    *,
    uow_factory: UnitOfWorkFactory,
    mailer: Mailer,
    policy: SendingPolicy,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """One confirmation mail per answer event of the batch; the copies of an event count once.
    Answers to unknown invitations raise ``UnknownInvitation``, after the others were sent."""
    store = uow_factory(batch[0].context).without_transaction()
    invitations = await store.deliveries.latest_invitations({item.event.invitation_id for item in batch})
    deliveries: dict[str, Delivery] = {}
    contexts: dict[str, EventContext] = {}
    unknown: set[str] = set()
    for item in batch:
        answered, event_id = item.event, item.envelope.event_id
        invitation = invitations.get(answered.invitation_id)
        if invitation is None:
            unknown.add(answered.invitation_id)
            continue
        message_id = confirmation_message_id(event_id, policy.mail_domain)
        delivery = Delivery.for_answer(answered, event_id, invitation.conference, message_id)
        deliveries.setdefault(delivery.id, delivery)
        contexts.setdefault(delivery.id, item.context)
    await send_new(
        list(deliveries.values()), contexts, uow_factory=uow_factory, mailer=mailer, policy=policy, clock=clock
    )
    if unknown:
        raise UnknownInvitation(f"no invitation mail known for the answered invitation(s) {sorted(unknown)}")
