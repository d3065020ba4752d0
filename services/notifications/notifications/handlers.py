"""What the notifications service does when events arrive. Plain functions, wired in app.py.

One delivery record per invitation guards against duplicates: a redelivered InvitationIssued
finds it final and sends nothing. Sending is leased to one claim at a time (one batch of one
instance); if an instance dies after the SMTP server took a mail but before the outcome was
recorded, the lease runs out and the mail is sent once more with the same Message-ID, so mail
systems can recognise it. Outcomes are recorded in small chunks to keep that window small.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from quartier_shared.consumer import Received
from quartier_shared.events import (
    ActorDeactivated,
    ActorSnapshot,
    EventContext,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
)
from quartier_shared.logging import get_logger, redact
from quartier_shared.metrics import MAILS
from quartier_shared.mongo import is_unavailable
from quartier_shared.retry import Retry

from .domain import Contact, Delivery, DeliveryStatus
from .mail import Recipient, Sender, message_id, render_invitation
from .repository import MongoContactRepository, MongoDeliveryRepository
from .settings import Settings
from .smtp import PermanentMailError, SmtpSender, TemporaryMailError
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)
OUTCOMES_PER_TRANSACTION = 50
_until_recorded = Retry(base=0.2, cap=5.0, transient=is_unavailable)

Outcome = tuple[Delivery, DeliveryStatus, str | None]


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    uow_factory: UnitOfWorkFactory
    contacts: MongoContactRepository
    deliveries: MongoDeliveryRepository
    smtp: SmtpSender


async def update_contact(received: Received[ActorSnapshot | ActorDeactivated], deps: Dependencies) -> None:
    event = received.event
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
    waiting = await deps.deliveries.waiting_for(contact.actor_id)
    context = received.context
    await deliver(waiting, {d.id: context for d in waiting}, deps)


async def send_invitations(batch: list[Received[InvitationIssued]], deps: Dependencies) -> None:
    fresh: dict[str, Delivery] = {}
    contexts: dict[str, EventContext] = {}
    for item in batch:
        event = item.event
        d = Delivery(
            id=Delivery.id_for(event.invitation_id, "invitation"),
            kind="invitation",
            invitation_id=event.invitation_id,
            conference_id=event.conference_id,
            actor_id=event.actor_id,
            conference=event.conference,
            status=DeliveryStatus.PENDING,
            message_id=message_id(event.invitation_id, "invitation", deps.settings.mail_domain),
        )
        fresh.setdefault(d.id, d)
        contexts.setdefault(d.id, item.context)
    # Stored already claimed, one write each. Ids stored before (a redelivery, or work a crashed
    # instance left) go through the claim, which skips final ones and waits for live leases.
    await deliver(list(fresh.values()), contexts, deps, stored=False)


async def deliver(
    deliveries: list[Delivery], contexts: dict[str, EventContext], deps: Dependencies, stored: bool = True
) -> None:
    """Send these deliveries; ``stored=False`` for ones not in the database yet."""
    if not deliveries:
        return
    contacts = await deps.contacts.get_many({d.actor_id for d in deliveries})
    ready = [d for d in deliveries if d.actor_id in contacts]
    unknown = [d for d in deliveries if d.actor_id not in contacts]
    ready_stored = ready if stored else []
    if unknown:
        # The actors' contact events have not reached us yet; update_contact sends these when they
        # do. It saves the contact before it looks for waiting deliveries, and we look for the
        # contact again after marking them waiting, so when both run at once one of them sends.
        if stored:
            await deps.deliveries.mark_waiting([d.id for d in unknown])
        else:
            await deps.deliveries.add_waiting(unknown)
        late = await deps.contacts.get_many({d.actor_id for d in unknown})
        contacts |= late
        ready_stored = ready_stored + [d for d in unknown if d.actor_id in late]
        for d in unknown:
            if d.actor_id not in contacts:
                log.info("delivery_waiting_for_contact", invitation_id=d.invitation_id, actor_id=d.actor_id)
    size = deps.settings.delivery_claim_size
    if not stored:
        # A few claims at once, so the SMTP server is busy while one claim's outcomes are written.
        slots = asyncio.Semaphore(deps.settings.delivery_claims_in_flight)

        async def claim_new(part: list[Delivery]) -> list[Delivery]:
            async with slots:
                taken = await _add_claimed_and_send(part, contacts, contexts, deps)
            return [d for d in part if d.id not in taken]

        parts = [ready[start : start + size] for start in range(0, len(ready), size)]
        results = await asyncio.gather(*(claim_new(part) for part in parts), return_exceptions=True)
        _raise_first(results)  # after all claims ended, for the reason _send gives
        ready_stored += [d for result in results if isinstance(result, list) for d in result]
    for start in range(0, len(ready_stored), size):
        await _claim_and_send(ready_stored[start : start + size], contacts, contexts, deps)


async def _add_claimed_and_send(
    new: list[Delivery], contacts: dict[str, Contact], contexts: dict[str, EventContext], deps: Dependencies
) -> set[str]:
    """Store new deliveries leased to a fresh claim and send them; returns the ids stored here (any
    another instance stored first go through the claim path)."""
    token = str(uuid.uuid4())
    claimed = await deps.deliveries.add_claimed(new, deps.settings.delivery_lease_seconds, token)
    await _send(claimed, contacts, contexts, token, deps)
    return {d.id for d in claimed}


async def _claim_and_send(
    ready: list[Delivery], contacts: dict[str, Contact], contexts: dict[str, EventContext], deps: Dependencies
) -> None:
    while ready:
        token = str(uuid.uuid4())
        # In a transaction: if a crashed instance left some of these documents locked by its
        # unfinished transaction, we get a quick write conflict (retried) instead of a write
        # that hangs, and the server reaps the dead transaction after its lifetime (60 s).
        async with deps.uow_factory(next(iter(contexts.values()))) as uow:
            claimed = await uow.deliveries.claim([d.id for d in ready], deps.settings.delivery_lease_seconds, token)
            await uow.commit()
        await _send(claimed, contacts, contexts, token, deps)
        ready = await _held_elsewhere(ready, {d.id for d in claimed}, deps)


async def _held_elsewhere(wanted: list[Delivery], claimed: set[str], deps: Dependencies) -> list[Delivery]:
    """Deliveries we could not claim because another instance holds them; wait for that lease.

    Usually the holder finishes in a moment; after a crash its lease runs out and we take over.
    """
    rest = [d.id for d in wanted if d.id not in claimed]
    if not rest:
        return []
    current = await deps.deliveries.get_many(rest)
    open_ = [d for d in current.values() if not d.status.final]
    if open_:
        now = datetime.now(UTC)
        soonest = min((d.lease_until - now).total_seconds() if d.lease_until else 1.0 for d in open_)
        log.debug("deliveries_leased_elsewhere", count=len(open_), lease_left_s=round(soonest, 1))
        await asyncio.sleep(min(max(soonest, 0.05), 1.0))
    return open_


async def _send(
    claimed: list[Delivery],
    contacts: dict[str, Contact],
    contexts: dict[str, EventContext],
    token: str,
    deps: Dependencies,
) -> None:
    sender = Sender(name=deps.settings.smtp_from_name, email=deps.settings.smtp_from)
    recorder = _OutcomeRecorder(contexts, token, deps)

    async def one(d: Delivery) -> None:
        contact = contacts[d.actor_id]
        if not contact.reachable:
            await recorder.add(d, DeliveryStatus.FAILED, "not sent: the actor is inactive or has withdrawn consent")
            return
        mail = render_invitation(
            conference=d.conference,
            recipient=Recipient(name=contact.name, email=contact.email, language=contact.language),
            sender=sender,
            invitation_id=d.invitation_id,
            domain=deps.settings.mail_domain,
        )
        try:
            await deps.smtp.send(mail)
        except (PermanentMailError, TemporaryMailError) as exc:
            await recorder.add(d, DeliveryStatus.FAILED, str(exc)[:500])
            return
        await recorder.add(d, DeliveryStatus.SENT, None)

    # Every mail runs to its end and every outcome is recorded before an error is raised: an
    # outcome left unrecorded would have its mail sent again once the lease runs out.
    # A mail that broke without an outcome (an unexpected error) is released at once, so the
    # consumer's retry can claim it again instead of waiting for its lease to run out.
    results = await asyncio.gather(*(one(d) for d in claimed), return_exceptions=True)
    await recorder.flush()
    broken = [d.id for d, result in zip(claimed, results, strict=True) if isinstance(result, BaseException)]
    if broken:
        await deps.deliveries.release(broken, token)
    _raise_first(results)


def _raise_first(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


class _OutcomeRecorder:
    """Collects outcomes and records them in small transactions as they come in."""

    def __init__(self, contexts: dict[str, EventContext], token: str, deps: Dependencies) -> None:
        self.contexts = contexts
        self.token = token
        self.deps = deps
        self.pending: list[Outcome] = []
        self.lock = asyncio.Lock()

    async def add(self, d: Delivery, status: DeliveryStatus, reason: str | None) -> None:
        self.pending.append((d, status, reason))
        if len(self.pending) >= OUTCOMES_PER_TRANSACTION:
            await self.flush()

    async def flush(self) -> None:
        async with self.lock:
            outcomes, self.pending = self.pending, []
            if outcomes:
                await self._record(outcomes)

    async def _record(self, outcomes: list[Outcome]) -> None:
        # Wait for MongoDB if it is away: once the SMTP server has taken a mail, retrying the
        # whole delivery would send it twice.
        await _until_recorded.run(lambda: self._store(outcomes), event="outcomes_not_recorded_yet", count=len(outcomes))

    async def _store(self, outcomes: list[Outcome]) -> None:
        now = datetime.now(UTC)
        async with self.deps.uow_factory(self.contexts[outcomes[0][0].id]) as uow:
            held = await uow.deliveries.finish(outcomes, self.token)
            for d, status, reason in outcomes:
                if d.id in held:
                    uow.record(
                        _outcome_event(d, status, reason, now), d.outcome_event_id(status.value), self.contexts[d.id]
                    )
            await uow.commit()
        for d, status, reason in outcomes:
            if d.id not in held:
                continue
            MAILS.labels(status.value).inc()
            # A batch mixes triggers: each line names its own (the InvitationIssued it answers).
            trigger = self.contexts[d.id]
            ids = {
                "correlation_id": trigger.correlation_id,
                "event_id": trigger.causation_id,
                "event_type": "InvitationIssued",
                "invitation_id": d.invitation_id,
                "conference_id": d.conference_id,
            }
            if status is DeliveryStatus.SENT:
                log.info("invitation_sent", **ids)
            else:
                log.warning("invitation_failed", reason=redact(reason or ""), **ids)


def _outcome_event(
    d: Delivery, status: DeliveryStatus, reason: str | None, now: datetime
) -> InvitationSent | InvitationFailed:
    if status is DeliveryStatus.SENT:
        assert d.message_id is not None
        return InvitationSent(
            invitation_id=d.invitation_id,
            conference_id=d.conference_id,
            actor_id=d.actor_id,
            message_id=d.message_id,
            sent_at=now,
        )
    return InvitationFailed(
        invitation_id=d.invitation_id,
        conference_id=d.conference_id,
        actor_id=d.actor_id,
        reason=reason or "unknown",
        failed_at=now,
    )
