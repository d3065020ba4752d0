"""What follows an invitation: InvitationUpdated, InvitationCancelled and InvitationReminded, each
handled a consumer batch at a time, through the one sending workflow (``sending``): delivery
records with derived ids, leases, retries, consent, and no mail once the conference has started.

Contract, per invitation:
- Updated: if the invitation mail went out with older details, an update mail (one per sequence).
  If it has not gone out yet, it goes out with the newer details instead and no update follows; if
  it failed for good, nothing. An invitation mail in flight (leased, maybe at the SMTP server) is
  waited for first, so nobody gets an update before the invitation it updates.
- Cancelled: if the invitation mail went out, a cancellation mail (one per sequence). What has not
  gone out yet (the invitation, its updates, its reminders) never will: unclaimed it is cancelled
  now, leased it is marked so its claim cannot hand it over, and a mail in flight is waited for,
  so a cancellation always comes after the invitation it withdraws.
- Reminded: if the invitation mail went out and it was not cancelled, a reminder (one per
  ``reminder_id``).
A repeated event finds the delivery of its mail stored and sends nothing more. None of these mails
raise an event: InvitationSent and InvitationFailed are the invitation's own.

The InvitationIssued of the same invitation comes first on its key, but the consumer hands each
event type of a batch to its handler at the same time; so an update or a cancellation that finds
no invitation stored yet stores it itself (with the newer details; cancelled), and the
InvitationIssued then finds it stored before. The three handlers here take turns in an instance
(``FollowUps``; an invitation's events are on one partition, so on one instance), and an update or
a reminder that comes after the cancellation was handled sends nothing: so no update or reminder
ever follows a cancellation.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from quartier_shared.consumer import Received
from quartier_shared.events import (
    EventContext,
    InvitationCancelled,
    InvitationIssued,
    InvitationReminded,
    InvitationUpdated,
)
from quartier_shared.logging import get_logger

from .domain import CANCELLABLE, CANCELLATION, INVITATION, Delivery, DeliveryStatus
from .mail import invitation_message_id
from .notices import cancellation_message_id, reminder_message_id, update_message_id
from .sending import CANCELLED, Sending, SendingPolicy
from .unit_of_work import Repositories, UnitOfWorkFactory

log = get_logger(__name__)
E = TypeVar("E", InvitationUpdated, InvitationCancelled, InvitationReminded)


class FollowUps:
    """The three handlers as the consumer calls them, taking turns (see the module docstring)."""

    def __init__(self, sending: Sending) -> None:
        self.sending = sending
        self.turn = asyncio.Lock()

    async def updates(self, batch: list[Received[InvitationUpdated]]) -> None:
        async with self.turn:
            await send_updates(batch, sending=self.sending)

    async def cancellations(self, batch: list[Received[InvitationCancelled]]) -> None:
        async with self.turn:
            await send_cancellations(batch, sending=self.sending)

    async def reminders(self, batch: list[Received[InvitationReminded]]) -> None:
        async with self.turn:
            await send_reminders(batch, sending=self.sending)


async def send_updates(
    batch: list[Received[InvitationUpdated]],
    *,
    sending: Sending,
) -> None:
    """One update mail per sent invitation and new sequence; a pending invitation takes the newer
    details instead."""
    uow_factory, policy = sending.uow_factory, sending.policy
    items = _in_order(batch)
    store = uow_factory(batch[0].context).without_transaction()
    # First the stand-ins, then the refresh: an InvitationIssued of this batch stores its invitation
    # before the stand-in (refreshed next) or finds the stand-in stored (and sends that).
    stand_ins = await _stand_in_for_missing(items, store, policy)
    await _refresh(items, uow_factory)
    contacts = await store.contacts.get_many({d.actor_id for d in stand_ins})
    known = [d for d in stand_ins if d.actor_id in contacts]  # the others wait for their contact
    await sending.settle(known, contacts, items[0].context)
    deliveries = await _settled(items, store, sending, kinds=(INVITATION,))
    new: dict[str, Delivery] = {}
    contexts: dict[str, EventContext] = {}
    for item in items:
        updated = item.event
        found = deliveries[updated.invitation_id]
        if _was_cancelled(found):
            log.info("update_after_cancellation", invitation_id=updated.invitation_id)
            continue
        # Sent with older details: an update. Not sent yet, it carries the newer ones (refreshed);
        # failed: nothing.
        sent = [d for d in found if d.kind == INVITATION and d.status is DeliveryStatus.SENT]
        if any(d.conference.sequence < updated.conference.sequence for d in sent):
            message_id = update_message_id(updated.invitation_id, updated.conference.sequence, policy.mail_domain)
            update = Delivery.for_update(updated, message_id)
            new.setdefault(update.id, update)
            contexts.setdefault(update.id, item.context)
        else:
            log.info("update_needs_no_mail", invitation_id=updated.invitation_id, sequence=updated.conference.sequence)
    await sending.new(list(new.values()), contexts)


async def _refresh(items: Sequence[Received[InvitationUpdated]], uow_factory: UnitOfWorkFactory) -> None:
    """Details a mail has not been handed over with yet become the newer ones: one write per change
    (every invitation of one change carries the same details). In a transaction, as a claim is: a
    document a crashed instance's transaction still locks gives a quick write conflict (the
    consumer retries) instead of a write that hangs."""
    by_details: dict[str, list[str]] = defaultdict(list)
    for item in items:
        by_details[item.event.conference.model_dump_json()].append(item.event.invitation_id)
    async with uow_factory(items[0].context) as uow:
        for item in items:  # by sequence, so the newest details are written last
            ids = by_details.pop(item.event.conference.model_dump_json(), None)
            if ids:
                await uow.deliveries.refresh(ids, item.event.conference)
        await uow.commit()


async def _stand_in_for_missing(
    items: Sequence[Received[InvitationUpdated]], store: Repositories, policy: SendingPolicy
) -> list[Delivery]:
    """An invitation with no delivery stored yet (its InvitationIssued is in this batch, handled at
    this moment) is stored from the update, waiting to be claimed, with the newer details; returns
    those stored now or before."""
    found = {d.invitation_id for d in await store.deliveries.of_invitations({i.event.invitation_id for i in items})}
    latest = {i.event.invitation_id: i for i in items if i.event.invitation_id not in found}  # a later one wins
    stand_ins = [_invitation_of(item.event, policy) for item in latest.values()]
    await store.deliveries.add_waiting(stand_ins)
    return stand_ins


async def send_cancellations(
    batch: list[Received[InvitationCancelled]],
    *,
    sending: Sending,
) -> None:
    """A cancellation mail per sent invitation; what was not sent yet never will be."""
    uow_factory, policy = sending.uow_factory, sending.policy
    items = _in_order(batch)
    store = uow_factory(batch[0].context).without_transaction()
    # Stored cancelled where no invitation is stored yet, so its InvitationIssued (maybe in this
    # batch, handled at this moment) finds it final.
    tombstones = [
        Delivery.cancelled_invitation(c.event, invitation_message_id(c.event.invitation_id, 0, policy.mail_domain))
        for c in items
    ]
    await store.deliveries.add_cancelled(tombstones)
    async with uow_factory(batch[0].context) as uow:  # in a transaction, as ``refresh`` (see there)
        await uow.deliveries.cancel_unsent([c.event.invitation_id for c in items], CANCELLED, sending.clock.now())
        await uow.commit()
    deliveries = await _settled(items, store, sending, kinds=CANCELLABLE)
    new: dict[str, Delivery] = {}
    contexts: dict[str, EventContext] = {}
    for item in items:
        cancelled = item.event
        if _invitation_sent(deliveries[cancelled.invitation_id]):
            sequence = cancelled.conference.sequence
            message_id = cancellation_message_id(cancelled.invitation_id, sequence, policy.mail_domain)
            cancellation = Delivery.for_cancellation(cancelled, message_id)
            new.setdefault(cancellation.id, cancellation)
            contexts.setdefault(cancellation.id, item.context)
        else:
            log.info("cancelled_before_it_was_sent", invitation_id=cancelled.invitation_id)
    await sending.new(list(new.values()), contexts)


async def send_reminders(
    batch: list[Received[InvitationReminded]],
    *,
    sending: Sending,
) -> None:
    """A reminder per sent, not cancelled invitation and ``reminder_id``."""
    uow_factory, policy = sending.uow_factory, sending.policy
    items = _in_order(batch)
    store = uow_factory(batch[0].context).without_transaction()
    deliveries = await _settled(items, store, sending, kinds=(INVITATION,))
    new: dict[str, Delivery] = {}
    contexts: dict[str, EventContext] = {}
    for item in items:
        reminded = item.event
        found = deliveries[reminded.invitation_id]
        if not _invitation_sent(found) or _was_cancelled(found):
            log.info("reminder_needs_no_mail", invitation_id=reminded.invitation_id, reminder=reminded.reminder)
            continue
        message_id = reminder_message_id(reminded.invitation_id, reminded.reminder_id, policy.mail_domain)
        reminder = Delivery.for_reminder(reminded, message_id)
        new.setdefault(reminder.id, reminder)
        contexts.setdefault(reminder.id, item.context)
    await sending.new(list(new.values()), contexts)


def _in_order(batch: Iterable[Received[E]]) -> list[Received[E]]:
    """The batch by invitation and sequence, so a later change of one invitation comes after an
    earlier one (the consumer keeps a batch in the order of its partitions already)."""
    return sorted(batch, key=lambda item: (item.event.invitation_id, item.event.conference.sequence))


async def _settled(
    items: Sequence[Received[E]],
    store: Repositories,
    sending: Sending,
    *,
    kinds: Sequence[str],
) -> Mapping[str, list[Delivery]]:
    """By invitation id, its deliveries once those of ``kinds`` in flight (leased, maybe at the SMTP
    server) have ended: waited for, or taken over once their lease ran out."""
    invitation_ids = {item.event.invitation_id for item in items}
    found = await store.deliveries.of_invitations(invitation_ids)
    in_flight = [d for d in found if d.kind in kinds and d.status is DeliveryStatus.SENDING]
    if in_flight:
        contacts = await store.contacts.get_many({d.actor_id for d in in_flight})
        # A leased delivery had its contact when it was claimed.
        held = [d for d in in_flight if d.actor_id in contacts]
        context = items[0].context
        await sending.settle(held, contacts, context)
        found = await store.deliveries.of_invitations(invitation_ids)
    by_invitation: dict[str, list[Delivery]] = defaultdict(list)
    for d in found:
        by_invitation[d.invitation_id].append(d)
    return by_invitation


def _was_cancelled(deliveries: Iterable[Delivery]) -> bool:
    """A cancellation was handled: its mail is stored, or the invitation was stopped before it went out."""
    return any(
        d.kind == CANCELLATION or (d.kind == INVITATION and d.status is DeliveryStatus.CANCELLED) for d in deliveries
    )


def _invitation_sent(deliveries: Iterable[Delivery]) -> bool:
    return any(d.kind == INVITATION and d.status is DeliveryStatus.SENT for d in deliveries)


def _invitation_of(updated: InvitationUpdated, policy: SendingPolicy) -> Delivery:
    issued = InvitationIssued(
        invitation_id=updated.invitation_id,
        conference_id=updated.conference_id,
        actor_id=updated.actor_id,
        conference=updated.conference,
    )
    return Delivery.for_invitation(issued, invitation_message_id(updated.invitation_id, 0, policy.mail_domain))
