"""What the notifications service does when events arrive. Plain functions, wired in app.py.

One delivery record per invitation guards against duplicates: a redelivered InvitationIssued
finds it final and sends nothing. Sending is leased to one instance at a time; if an instance
dies after the SMTP server took a mail but before the outcome was recorded, the lease runs out
and the mail is sent once more with the same Message-ID, so mail systems can recognise it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from quartier_shared.consumer import Delivery as EventDelivery
from quartier_shared.events import ActorDeactivated, ActorSnapshot, InvitationFailed, InvitationIssued, InvitationSent
from quartier_shared.logging import get_logger, redact
from quartier_shared.mongo import EventContext, is_unavailable

from .domain import Contact, Delivery, DeliveryStatus
from .mail import Recipient, Sender, message_id, render_invitation
from .repository import MongoContactRepository, MongoDeliveryRepository
from .settings import Settings
from .smtp import PermanentMailError, SmtpSender, TemporaryMailError
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)
SERVICE = "notifications"


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    uow_factory: UnitOfWorkFactory
    contacts: MongoContactRepository
    deliveries: MongoDeliveryRepository
    smtp: SmtpSender


async def update_contact(event: ActorSnapshot | ActorDeactivated, delivery: EventDelivery, deps: Dependencies) -> None:
    current = await deps.contacts.get(event.actor_id)
    if current is not None and current.revision >= event.revision:
        return  # an older or repeated event
    if isinstance(event, ActorDeactivated):
        if current is None:
            return
        contact = replace(current, active=False, revision=event.revision)
    else:
        contact = Contact(
            actor_id=event.actor_id,
            name=event.name,
            email=event.email,
            language=event.language,
            consent_to_notifications=event.consent_to_notifications,
            active=event.active,
            revision=event.revision,
        )
    await deps.contacts.save(contact)
    for waiting in await deps.deliveries.waiting_for(contact.actor_id):
        await deliver(waiting, delivery.context(SERVICE), deps)


async def send_invitation(event: InvitationIssued, delivery: EventDelivery, deps: Dependencies) -> None:
    fresh = Delivery(
        id=Delivery.id_for(event.invitation_id, "invitation"),
        kind="invitation",
        invitation_id=event.invitation_id,
        conference_id=event.conference_id,
        actor_id=event.actor_id,
        conference=event.conference,
        status=DeliveryStatus.PENDING,
        message_id=message_id(event.invitation_id, "invitation", deps.settings.mail_domain),
    )
    stored = await deps.deliveries.get_or_create(fresh)
    if stored.status.final:
        log.info("delivery_already_final", invitation_id=event.invitation_id, status=stored.status.value)
        return
    await deliver(stored, delivery.context(SERVICE), deps)


async def deliver(d: Delivery, context: EventContext, deps: Dependencies) -> None:
    contact = await deps.contacts.get(d.actor_id)
    if contact is None:
        # The actor's contact event has not reached us yet; update_contact sends it when it does.
        # It saves the contact before it looks for waiting deliveries, and we look for the contact
        # again after marking this one waiting, so when both run at once one of them sends it.
        await deps.deliveries.set_status(d.id, DeliveryStatus.WAITING_FOR_CONTACT)
        contact = await deps.contacts.get(d.actor_id)
        if contact is None:
            log.info("delivery_waiting_for_contact", invitation_id=d.invitation_id, actor_id=d.actor_id)
            return
    claimed = await _claim(d, context, deps)
    if claimed is None:
        return
    status, reason = DeliveryStatus.SENT, None
    if not contact.reachable:
        status, reason = DeliveryStatus.FAILED, "not sent: the actor is inactive or has withdrawn consent"
    else:
        message = render_invitation(
            conference=claimed.conference,
            recipient=Recipient(name=contact.name, email=contact.email, language=contact.language),
            sender=Sender(name=deps.settings.smtp_from_name, email=deps.settings.smtp_from),
            invitation_id=claimed.invitation_id,
            domain=deps.settings.mail_domain,
        )
        try:
            await deps.smtp.send(message)
        except (PermanentMailError, TemporaryMailError) as exc:
            status, reason = DeliveryStatus.FAILED, str(exc)[:500]
    await _record_outcome(claimed, status, reason, context, deps)


async def _claim(d: Delivery, context: EventContext, deps: Dependencies) -> Delivery | None:
    """Take the delivery's lease; wait while another instance holds a live one. None if final."""
    while True:
        # In a transaction: if a crashed instance left this document locked by its unfinished
        # transaction, we get a quick write conflict (retried) instead of a write that hangs, and
        # the server reaps the dead transaction after its lifetime (60 s, as MongoDB does).
        async with deps.uow_factory(context) as uow:
            claimed = await uow.deliveries.claim(d.id, deps.settings.delivery_lease_seconds)
            await uow.commit()
        if claimed is not None:
            return claimed
        current = await deps.deliveries.get(d.id)
        if current is None or current.status.final:
            return None
        # Usually the holder finishes in a moment; after a crash its lease runs out and we take over.
        remaining = 1.0
        if current.lease_until is not None:
            remaining = (current.lease_until - datetime.now(UTC)).total_seconds()
        log.debug("delivery_leased_elsewhere", invitation_id=d.invitation_id, lease_left_s=round(remaining, 1))
        await asyncio.sleep(min(max(remaining, 0.05), 1.0))


async def _record_outcome(
    d: Delivery, status: DeliveryStatus, reason: str | None, context: EventContext, deps: Dependencies
) -> None:
    """Record what happened, waiting for MongoDB if it is away: once the SMTP server has taken a
    mail, retrying the whole delivery would send it twice."""
    pause = 0.2
    while True:
        try:
            await _store_outcome(d, status, reason, context, deps)
            return
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("outcome_not_recorded_yet", invitation_id=d.invitation_id, error=type(exc).__name__)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


async def _store_outcome(
    d: Delivery, status: DeliveryStatus, reason: str | None, context: EventContext, deps: Dependencies
) -> None:
    now = datetime.now(UTC)
    async with deps.uow_factory(context) as uow:
        if not await uow.deliveries.finish(d, status, reason=reason):
            return  # another instance recorded it first
        if status is DeliveryStatus.SENT:
            assert d.message_id is not None
            uow.record(
                InvitationSent(
                    invitation_id=d.invitation_id,
                    conference_id=d.conference_id,
                    actor_id=d.actor_id,
                    message_id=d.message_id,
                    sent_at=now,
                ),
                event_id=d.outcome_event_id("sent"),
            )
        else:
            uow.record(
                InvitationFailed(
                    invitation_id=d.invitation_id,
                    conference_id=d.conference_id,
                    actor_id=d.actor_id,
                    reason=reason or "unknown",
                    failed_at=now,
                ),
                event_id=d.outcome_event_id("failed"),
            )
        await uow.commit()
    if status is DeliveryStatus.SENT:
        log.info("invitation_sent", invitation_id=d.invitation_id, conference_id=d.conference_id)
    else:
        log.warning("invitation_failed", invitation_id=d.invitation_id, reason=redact(reason or ""))
