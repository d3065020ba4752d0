"""The sending workflow: each mail (an invitation, the confirmation of an answer, an update, a
cancellation, a reminder or a notice; see ``domain``) sent once, under a lease, and its outcome recorded.

One delivery record per mail guards against duplicates, and sending is leased: a claim (a token
and an end time) holds up to ``claim_size`` deliveries of one instance while it sends them.
The ways in:
- ``Sending.new``: deliveries of InvitationIssued or InvitationAnswered events just received. They are stored already
  leased to a fresh claim, one write per claim, and sent, ``claims_in_flight`` claims at once, so
  the next claim is stored while one is being sent. A delivery stored before (a
  redelivered event, or work a crashed instance left) goes through a claim instead, which skips
  final ones: a redelivery sends nothing. One whose contact has not arrived is stored waiting.
- ``Sending.waiting_for``: the deliveries that waited for a contact, once it has arrived: claimed,
  then sent.
- ``Sending.settle``: stored deliveries another claim may hold, claimed and sent (or waited for) until
  each is final: what an update or a cancellation does before it decides whether the invitation
  went out.
- ``Sending.claimed``: deliveries the caller claimed itself: the deferred ones that are due
  (``deferred_sending``).

Rules they all follow:
- A delivery another claim holds is waited for. Usually the holder finishes in a moment; after a
  crash its lease runs out and the waiting claim takes it over. So an instance killed after the
  SMTP server took a mail, but before its outcome was recorded, has that mail sent once more,
  with the same Message-ID, so mail systems can recognise it. That window is at most one mail per
  SMTP connection (``SMTP_CONNECTIONS``) per instance, however large the claims and however many
  are in flight: each mail is sent in a sender slot of the instance's ``OutcomeRecorder``, held
  until its outcome is logged (see ``recording``).
- Each outcome is logged as soon as the mail is done, by group commit, and folded into the
  delivery once the claim's mails are all done (``recording``): with its event (InvitationSent or InvitationFailed; a
  confirmation raises none, a deferral none yet) in one transaction, and only while the claim
  still holds the delivery. A claim folds the logged outcomes of what it takes over first, so a
  logged outcome counts as recorded. While MongoDB is away, logging waits and retries, and the
  sender with it: once the SMTP server has taken a mail, sending it again is no way to recover.
- At the moment of sending, under the lease, each claim hands its deliveries over (``hand_over``):
  one a cancellation reached before is recorded cancelled and not sent, and the others are sent
  with the details stored now (an update may have refreshed them). From then on a delivery counts
  as possibly sent: a cancellation or an update that comes later waits for its outcome, and one
  taken over after a crash is sent again (as any unrecorded mail is), its cancellation after it.
  New deliveries are stored handed over already, a write and a read fewer per claim: the moment
  of sending follows their insert at once, so a cancellation or an update racing it finds them
  possibly sent, and the invitation goes out followed by its cancellation or update.
- Nothing is mailed once the conference has started (by the delivery's latest details; answers'
  confirmations excepted): a failed outcome with that reason ("too late").
- A temporary refusal (4xx, throttling, refused credentials) is no outcome yet: the delivery is
  deferred, given back to be tried again later (``deferrals``, ``deferred_sending``).
- With SMTP_RATE_PER_MINUTE, each mail waits for its slot (``rate_limit``), holding its sender
  slot, before it goes to the SMTP server; a wait that would outlast the claim's lease renews the
  lease of that delivery, and a slot further off defers the delivery to it.
- A mail's lease is renewed every half lease while it waits for a sender (a claim has more mails
  than the instance has SMTP connections) and while it is sent (a slow server), so no other claim
  takes it over and sends it a second time.
- Opt-out is respected when the mail is due: an inactive contact, or one without consent, gets a
  failed outcome and no mail.
- A mail that breaks unexpectedly neither drops its claim's other outcomes nor blocks the retry:
  the others are recorded, the broken one is given back at once, and then the error is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from quartier_shared.events import EventContext
from quartier_shared.logging import get_logger, redact

from .deferrals import Deferral
from .domain import (
    CANCELLATION,
    CONFIRMATION,
    NOTICE,
    REMINDER,
    UPDATE,
    Contact,
    Delivery,
    DeliveryStatus,
    HandOver,
    Lease,
    Outcome,
)
from .footer import Footer
from .mail import OutgoingMail, Recipient, Sender, render_confirmation, render_invitation
from .notices import render_cancellation, render_reminder, render_update
from .personal_links import PersonalLinks
from .privacy_notice import render_privacy_notice
from .rate_limit import Pace
from .recording import OutcomeRecorder
from .smtp import MailAuthError, PermanentMailError, TemporaryMailError
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)
UNREACHABLE = "not sent: the actor is inactive or has withdrawn consent"
STARTED = "not sent: too late, the conference had started"
CANCELLED = "not sent: the conference was cancelled"
LEASE_LOST = "not sent: the claim lost the delivery"  # never stored: its outcome is not recorded
# How late a delivery deferred to its slot of the relay's pace may come and still use that slot
# (the worker looks every few seconds); later, it takes a new one.
_SLOT_KEPT = timedelta(minutes=1)


class Mailer(Protocol):
    """Sends one mail (``smtp.SmtpSender``). Raises PermanentMailError when the server refuses it,
    TemporaryMailError when retrying did not get it through."""

    async def send(self, mail: OutgoingMail) -> None: ...


class Clock(Protocol):
    """Time for leases: when they end, and how long to wait for one."""

    def now(self) -> datetime: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class SendingPolicy:
    sender: Sender  # the From of every mail, and its calendar's ORGANIZER
    mail_domain: str  # of Message-IDs and calendar UIDs
    lease_seconds: float  # how long a claim holds its deliveries
    claim_size: int  # deliveries per claim
    claims_in_flight: int  # claims of new deliveries sent at once
    links: PersonalLinks  # the personal answer and unsubscribe links in every mail
    privacy_url: str  # the privacy notice every mail's footer links
    deferral: Deferral = field(default_factory=Deferral)  # temporary refusals: when to try again
    pace: Pace | None = None  # SMTP_RATE_PER_MINUTE, over every instance; None: no limit

    def footer(self, actor_id: str, district: str, issued_at: datetime) -> Footer:
        """The unsubscribe headers and footer of a mail to ``actor_id``."""
        return Footer(
            unsubscribe_url=self.links.for_unsubscribe(actor_id, issued_at),
            privacy_url=self.privacy_url,
            contact=self.sender.email,
            district=district,
        )


@dataclass(frozen=True)
class Sending:
    """The ways in (see the module docstring), with what each needs: wired once per instance
    (``app``), and passed to every handler that sends."""

    uow_factory: UnitOfWorkFactory
    mailer: Mailer
    recorder: OutcomeRecorder  # the instance's one: its sender slots bound the crash window
    policy: SendingPolicy
    clock: Clock = SYSTEM_CLOCK

    async def new(self, deliveries: Sequence[Delivery], contexts: Mapping[str, EventContext]) -> None:
        """Store new deliveries already leased, and send them. ``contexts``: by delivery id, the
        context of the event each one answers."""
        if deliveries:
            await _Run(self, contexts).new(deliveries)

    async def waiting_for(self, contact: Contact, context: EventContext) -> None:
        """Claim and send the deliveries that waited for this contact; ``context``: of the actor
        event that brought it."""
        waiting = await self.uow_factory(context).without_transaction().deliveries.waiting_for(contact.id)
        if waiting:
            await _Run(self, {d.id: context for d in waiting}).claim_and_send(waiting, {contact.id: contact})

    async def settle(
        self, deliveries: Sequence[Delivery], contacts: Mapping[str, Contact], context: EventContext
    ) -> None:
        """Claim and send these stored deliveries (``contacts``: by actor id, each one's), waiting
        for any another claim holds and taking it over once its lease ran out: when this returns,
        each is final. ``context``: of the event that asks for it."""
        if deliveries:
            await _Run(self, {d.id: context for d in deliveries}).claim_and_send(deliveries, contacts)

    async def claimed(
        self,
        deliveries: Sequence[Delivery],
        contacts: Mapping[str, Contact],
        lease: Lease,
        contexts: Mapping[str, EventContext],
    ) -> None:
        """Send deliveries the caller claimed with ``lease`` (``contacts``: by actor id, each
        one's; ``contexts``: by delivery id, the event each answers; ``deferred_sending``), and
        record their outcomes as every claim does."""
        if deliveries:
            await _Run(self, contexts)._send(list(deliveries), contacts, lease)


class _Run:
    """One run of the workflow: its dependencies, and the event each delivery answers."""

    def __init__(self, sending: Sending, contexts: Mapping[str, EventContext]) -> None:
        self.uow_factory = sending.uow_factory
        self.mailer = sending.mailer
        self.recorder = sending.recorder
        self.policy = sending.policy
        self.clock = sending.clock
        self.contexts = contexts
        # Claims and reads record no events: any context of the batch does for them.
        self.context = next(iter(contexts.values()))
        self.store = self.uow_factory(self.context).without_transaction()

    async def new(self, deliveries: Sequence[Delivery]) -> None:
        contacts = await self.store.contacts.get_many({d.actor_id for d in deliveries})
        known = [d for d in deliveries if d.actor_id in contacts]
        unknown = [d for d in deliveries if d.actor_id not in contacts]
        arrived = await self._store_waiting(unknown)
        contacts |= arrived
        stored_before = [d for d in unknown if d.actor_id in arrived]
        # A few claims at once, so the SMTP server is busy while one claim's outcomes are written.
        slots = asyncio.Semaphore(self.policy.claims_in_flight)

        async def one_claim(part: list[Delivery]) -> list[Delivery]:
            async with slots:
                return await self._add_claimed_and_send(part, contacts)

        size = self.policy.claim_size
        parts = [known[start : start + size] for start in range(0, len(known), size)]
        results = await asyncio.gather(*(one_claim(part) for part in parts), return_exceptions=True)
        _raise_first(results)  # once every claim ended, for the reason _send gives
        stored_before += [d for result in results if isinstance(result, list) for d in result]
        await self.claim_and_send(stored_before, contacts)

    async def _store_waiting(self, unknown: list[Delivery]) -> dict[str, Contact]:
        """Store deliveries whose contact has not arrived as waiting for it; returns the contacts
        that arrived meanwhile (their deliveries, stored now, go through a claim)."""
        if not unknown:
            return {}
        # update_contact saves the contact before it looks for waiting deliveries, and we look for
        # the contact again after storing them waiting, so when both run at once one of them sends.
        await self.store.deliveries.add_waiting(unknown)
        arrived = await self.store.contacts.get_many({d.actor_id for d in unknown})
        for d in unknown:
            if d.actor_id not in arrived:
                log.info("delivery_waiting_for_contact", invitation_id=d.invitation_id, actor_id=d.actor_id)
        return arrived

    async def _add_claimed_and_send(self, new: list[Delivery], contacts: Mapping[str, Contact]) -> list[Delivery]:
        """Store new deliveries leased to a fresh claim, one write, and send them; returns the ones
        that were stored before (by a redelivery, or another instance), for the claim path."""
        lease = Lease.starting(self.clock.now(), self.policy.lease_seconds)
        claimed = await self.store.deliveries.add_claimed(new, lease)
        # Stored handed over already: nothing can have cancelled or refreshed them since.
        await self._send(claimed, contacts, lease, handed=HandOver(send=claimed, cancelled=set()))
        stored_here = {d.id for d in claimed}
        return [d for d in new if d.id not in stored_here]

    async def claim_and_send(self, deliveries: Sequence[Delivery], contacts: Mapping[str, Contact]) -> None:
        """Stored deliveries, a claim at a time; ones another claim holds are waited for."""
        size = self.policy.claim_size
        for start in range(0, len(deliveries), size):
            wanted = list(deliveries[start : start + size])
            while wanted:
                # A logged outcome counts as recorded: folded first, so that nothing logged is sent again.
                await self.recorder.fold_for([d.id for d in wanted])
                now = self.clock.now()
                lease = Lease.starting(now, self.policy.lease_seconds)
                # In a transaction: if a crashed instance left some of these documents locked by its
                # unfinished transaction, we get a quick write conflict (retried) instead of a write
                # that hangs, and the server reaps the dead transaction after its lifetime (60 s).
                async with self.uow_factory(self.context) as uow:
                    claimed = await uow.deliveries.claim([d.id for d in wanted], lease, now)
                    await uow.commit()
                await self._send(claimed, contacts, lease)
                wanted = await self._held_elsewhere(wanted, {d.id for d in claimed})

    async def _held_elsewhere(self, wanted: list[Delivery], claimed: set[str]) -> list[Delivery]:
        """The deliveries of ``wanted`` we could not claim and that are not final: another claim
        holds them. Before returning them, waits until the soonest lease may have run out (a
        second at most): usually the holder finishes in a moment, after a crash we take over."""
        rest = [d.id for d in wanted if d.id not in claimed]
        if not rest:
            return []
        current = await self.store.deliveries.get_many(rest)
        open_ = [d for d in current.values() if not d.status.final]
        if open_:
            now = self.clock.now()
            soonest = min((d.lease_until - now).total_seconds() if d.lease_until else 1.0 for d in open_)
            log.debug("deliveries_leased_elsewhere", count=len(open_), lease_left_s=round(soonest, 1))
            await self.clock.sleep(min(max(soonest, 0.05), 1.0))
        return open_

    async def _send(
        self, claimed: list[Delivery], contacts: Mapping[str, Contact], lease: Lease, handed: HandOver | None = None
    ) -> None:
        """Send what the claim holds; ``handed``: what it stored handed over already (new ones)."""
        if not claimed:
            return
        # The moment of sending: a delivery cancelled since it was claimed is not sent, and the
        # others go out with the details stored now.
        hand_over = handed or await self.store.deliveries.hand_over([d.id for d in claimed], lease.token)
        cancelled = [Outcome(d, DeliveryStatus.CANCELLED, CANCELLED) for d in claimed if d.id in hand_over.cancelled]
        broken: list[str] = []

        async def record(outcome: Outcome) -> None:
            await self.recorder.record(outcome, lease.token, self.contexts[outcome.delivery.id])

        async def one(d: Delivery) -> None:
            # A claim has more mails than the instance has senders: while one waits for a sender
            # its lease is renewed, as while it is sent, so that no other claim takes it over.
            sender_free = asyncio.Event()
            queued = asyncio.create_task(self._renew_while_queued(d, lease, sender_free))
            try:
                # The slot is held until the outcome is recorded: that bounds what a crash sends
                # twice. It is taken before the wait for the relay's pace, so that a slot of the
                # pace is only taken by a sender ready to use it.
                async with self.recorder.slot():
                    try:
                        sender_free.set()
                        if await queued:  # at once, or once a renewal under way has its answer
                            outcome = await self._mail(d, contacts[d.actor_id], lease)
                        else:  # an erasure took it meanwhile: not sent, its outcome not recorded
                            outcome = Outcome(d, DeliveryStatus.DEFERRED, LEASE_LOST, retry_at=self.clock.now())
                    except Exception:
                        broken.append(d.id)
                        raise
                    await record(outcome)
            finally:
                sender_free.set()  # also when we are cancelled while queued

        # Every mail runs to its end and every outcome is recorded before an error is raised: an
        # outcome left unrecorded would have its mail sent again once the lease runs out.
        # A mail that broke without an outcome (an unexpected error) is given back at once, so the
        # consumer's retry can claim it again instead of waiting for its lease to run out.
        results = await asyncio.gather(
            *(record(o) for o in cancelled), *(one(d) for d in hand_over.send), return_exceptions=True
        )
        if broken:
            await self.store.deliveries.release(broken, lease.token)
        # The claim's outcomes, logged one by one, go into the deliveries together, with their
        # events: what the caller reads next (a settle, the delivery list) shows them.
        await self.recorder.fold()
        _raise_first(results)

    async def _mail(self, d: Delivery, contact: Contact, lease: Lease) -> Outcome:
        """Send one delivery's mail, and say how that ended (or that it is deferred); an
        unexpected error is raised."""
        if d.started(self.clock.now()):
            return Outcome(d, DeliveryStatus.FAILED, STARTED)
        if not contact.reachable:
            return Outcome(d, DeliveryStatus.FAILED, UNREACHABLE)
        paced = await self._wait_for_slot(d, lease)
        if paced is not None:
            return self._remembering_trigger(paced)
        if d.started(self.clock.now()):  # the wait may have lasted until the start
            return Outcome(d, DeliveryStatus.FAILED, STARTED)
        mail = self._render(d, Recipient(name=contact.name, email=contact.email, language=contact.language))
        try:
            await self._send_under_lease(d, lease, mail)
        except (PermanentMailError, TemporaryMailError) as exc:
            # The server's answer may name addresses: they are taken out before the reason is
            # stored or published (both databases, the event, every answer).
            reason = redact(str(exc), limit=500)
            now = self.clock.now()
            if isinstance(exc, MailAuthError):
                return self._remembering_trigger(
                    self.policy.deferral.paused(d, reason, now + timedelta(seconds=exc.retry_in))
                )
            if isinstance(exc, TemporaryMailError):
                return self._remembering_trigger(self.policy.deferral.after(d, reason, now))
            return Outcome(d, DeliveryStatus.FAILED, reason)
        return Outcome(d, DeliveryStatus.SENT)

    def _remembering_trigger(self, outcome: Outcome) -> Outcome:
        """A deferred delivery keeps the event it answers (see ``Delivery.trigger``)."""
        if outcome.status is not DeliveryStatus.DEFERRED:
            return outcome
        return replace(outcome, delivery=replace(outcome.delivery, trigger=self.contexts[outcome.delivery.id]))

    async def _send_under_lease(self, d: Delivery, lease: Lease, mail: OutgoingMail) -> None:
        """``mailer.send``, renewing the delivery's lease every half lease while it runs: a slow
        server (timeouts, quick retries, a queue for a connection) must not let another claim take
        the delivery over and send it a second time. Should the claim lose it all the same (an
        erasure), the send runs to its end and its outcome is not recorded."""
        sending = asyncio.ensure_future(self.mailer.send(mail))
        half = self.policy.lease_seconds / 2
        held = True
        try:
            while not (await asyncio.wait({sending}, timeout=half))[0]:
                if held:
                    until = self.clock.now() + timedelta(seconds=self.policy.lease_seconds)
                    held = await self.store.deliveries.renew(d.id, lease.token, until)
                    if not held:
                        log.info("delivery_taken_while_sending", invitation_id=d.invitation_id)
        except asyncio.CancelledError:
            sending.cancel()
            raise
        sending.result()  # the send's own error, if any

    async def _renew_while_queued(self, d: Delivery, lease: Lease, sender_free: asyncio.Event) -> bool:
        """Renew the delivery's lease every half lease until ``sender_free`` is set; returns False
        if the claim lost it meanwhile (an erasure took it): it is not sent, and its outcome is
        not recorded. An error of a renewal (MongoDB away) is raised.

        Ended by the event, not by cancelling it: on Python 3.11 a cancellation that arrives as
        MongoDB answers is lost (pymongo awaits its socket with ``asyncio.wait_for``; see
        ``quartier_shared.wakeup``), and a renewal that never ended would hold its sender, and
        the lease, for ever."""
        half = self.policy.lease_seconds / 2
        while True:
            with contextlib.suppress(TimeoutError):  # only our own deadline: a cancellation is raised
                async with asyncio.timeout(half):
                    await sender_free.wait()
            if sender_free.is_set():
                return True
            until = self.clock.now() + timedelta(seconds=self.policy.lease_seconds)
            if not await self.store.deliveries.renew(d.id, lease.token, until):
                log.info("delivery_taken_while_queued", invitation_id=d.invitation_id)
                return False

    async def _wait_for_slot(self, d: Delivery, lease: Lease) -> Outcome | None:
        """With a relay limit, take this mail's slot and wait for it (None: send now). A slot
        further off than half a lease is not waited for: the delivery is deferred to it, keeping
        the slot (``paced_until``), so neither a claim nor the consumer's batch is held for long.
        A lease too short for the wait is renewed first; a delivery the claim no longer holds (an
        erasure took it) is not sent (an outcome that is not recorded)."""
        pace, now = self.policy.pace, self.clock.now()
        if pace is None:
            return None
        if d.paced_until is not None and d.paced_until <= now < d.paced_until + _SLOT_KEPT:
            return None  # deferred to its slot, and back in time for it
        slot = await pace.slot(now)
        now = self.clock.now()  # taking the slot took a moment too
        half_lease = timedelta(seconds=self.policy.lease_seconds / 2)
        if slot <= now:
            return None
        if slot - now > half_lease:
            return self.policy.deferral.paced(d, slot)
        # Renewed before the wait, while the claim still holds it, to a lease as long as at claiming.
        if slot + half_lease > (d.lease_until or lease.until):
            until = slot + 2 * half_lease
            if not await self.store.deliveries.renew(d.id, lease.token, until):
                log.info("delivery_taken_while_waiting", invitation_id=d.invitation_id, conference_id=d.conference_id)
                return Outcome(d, DeliveryStatus.DEFERRED, LEASE_LOST, retry_at=now)
        await self.clock.sleep((slot - now).total_seconds())
        return None

    def _render(self, d: Delivery, recipient: Recipient) -> OutgoingMail:
        policy = self.policy
        if d.kind == NOTICE:  # no invitation, so no answer link; the footer names its districts
            assert d.message_id is not None, "a notice is stored with its Message-ID"
            return render_privacy_notice(
                recipient=recipient,
                sender=policy.sender,
                msg_id=d.message_id,
                privacy_url=policy.privacy_url,
                footer=policy.footer(d.actor_id, d.conference.district_name, self.clock.now()),
            )
        # The link expires with the conference as this delivery knows it (its latest details).
        link = policy.links.for_invitation(d.invitation_id, d.conference.ends_at)
        footer = policy.footer(d.actor_id, d.conference.district_name, self.clock.now())
        if d.kind == UPDATE:
            assert d.previous is not None, "an update is stored with what it changes"
            return render_update(
                conference=d.conference,
                previous=d.previous,
                confirm=d.confirm,
                recipient=recipient,
                sender=policy.sender,
                invitation_id=d.invitation_id,
                domain=policy.mail_domain,
                footer=footer,
                link=link,
            )
        if d.kind == CANCELLATION:
            return render_cancellation(
                conference=d.conference,
                reason=d.note,
                recipient=recipient,
                sender=policy.sender,
                invitation_id=d.invitation_id,
                domain=policy.mail_domain,
                footer=footer,
            )
        if d.kind == REMINDER:
            assert d.reminder is not None and d.reminder_id is not None, "a reminder is stored with both"
            return render_reminder(
                conference=d.conference,
                reminder=d.reminder,
                reminder_id=d.reminder_id,
                recipient=recipient,
                sender=policy.sender,
                invitation_id=d.invitation_id,
                domain=policy.mail_domain,
                footer=footer,
                link=link,
            )
        if d.kind == CONFIRMATION:
            assert d.reply is not None and d.message_id is not None, "a confirmation is stored with both"
            return render_confirmation(
                conference=d.conference,
                recipient=recipient,
                sender=policy.sender,
                reply=d.reply,
                invitation_id=d.invitation_id,
                message_id=d.message_id,
                domain=policy.mail_domain,
                footer=footer,
                link=link,
            )
        return render_invitation(
            conference=d.conference,
            recipient=recipient,
            sender=policy.sender,
            invitation_id=d.invitation_id,
            domain=policy.mail_domain,
            footer=footer,
            link=link,
            resend=d.resend,
        )


def _raise_first(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result
