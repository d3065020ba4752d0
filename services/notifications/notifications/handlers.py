"""The use cases of the notifications service: the events it consumes, and the HTTP queries and
commands. Plain functions, wired in app.py and called by api.py and the consumer.

Every event handler is idempotent: a contact only moves forward by actor revision, a conference's
copy by its sequence, and each mail has one delivery record, which the sending workflow
(``sending``) never sends twice. A redelivered event therefore sends nothing. The mails and their
ids:
- InvitationIssued: the invitation, one mail per invitation and resend number (a coordinator's
  resend is a new mail; the same event again is the same mail);
- InvitationAnswered: its confirmation, one mail per answer event (a replayed answer is the same
  mail; a later answer, a new event, is a new one). It is written with the conference as the
  invitation's mail last showed it, so an answer to an invitation this service never mailed fails
  (and, after the consumer's retries, goes to the dead-letter topic, to be replayed).
The update, cancellation and reminder mails that follow an invitation have handlers of their own
(``follow_ups``).
The queries read through the unit of work's repositories and commit nothing.

A test mail is no invitation: it has no delivery record and raises no event. It is counted per
conference and clock hour (``TestMailLimit``), since any coordinator could otherwise send mail to
any address through the city's relay; its address is never logged nor stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil

from quartier_shared.actor_copies import erasure_confirmed
from quartier_shared.consumer import Received
from quartier_shared.events import (
    ActorErased,
    ConferenceDrafted,
    ConferenceScheduled,
    ContactChanged,
    EventContext,
    InvitationAnswered,
    InvitationIssued,
    Language,
)
from quartier_shared.logging import get_logger, redact
from quartier_shared.pagination import FIRST_PAGE, Page, PageRequest, page_of

from .commands import SendTestMail
from .domain import Contact, Delivery, DeliveryStatus, KnownConference
from .mail import confirmation_message_id, invitation_message_id
from .preview import Preview, preview, rendered_test_mail
from .privacy_notice import notice_message_id
from .sending import SYSTEM_CLOCK, Clock, Mailer, Sending, SendingPolicy
from .smtp import PermanentMailError, TemporaryMailError
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)


class ConferenceUnknown(Exception):
    """No ConferenceDrafted or ConferenceScheduled of it has arrived (yet)."""


class TooManyTestMails(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"try again in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class TestMailNotSent(Exception):
    """The SMTP server did not take the test mail; the message says why, without addresses."""

    __test__ = False  # a "Test..." class, not one for pytest to collect


@dataclass(frozen=True)
class TestMailLimit:
    __test__ = False  # a "Test..." class, not one for pytest to collect

    per_hour: int  # test mails per conference and clock hour

    def window(self, now: datetime) -> datetime:
        return now.replace(minute=0, second=0, microsecond=0)

    def seconds_left(self, now: datetime) -> int:
        return max(1, ceil((self.window(now) + timedelta(hours=1) - now).total_seconds()))


# --- HTTP -----------------------------------------------------------------------------------------


async def deliveries_for(
    conference_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory, page: PageRequest = FIRST_PAGE
) -> Page[Delivery]:
    """One page of the mails of a conference, by id, for operators."""
    async with uow_factory(context).for_reading() as uow:
        found = await uow.deliveries.for_conference(conference_id, page)
    return page_of(found, page, lambda delivery: (delivery.id, delivery.id))


EXPORT_LIMIT = 1000  # deliveries in an actor's export, oldest ids first


@dataclass(frozen=True)
class ContactExport:
    """What this service holds about one actor (GDPR Art. 15): its contact copy (None: none) and
    up to ``EXPORT_LIMIT`` of its deliveries, each with when it finished."""

    contact: Contact | None
    deliveries: list[tuple[Delivery, datetime | None]]

    @property
    def truncated(self) -> bool:
        return len(self.deliveries) >= EXPORT_LIMIT


async def export_contact(actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> ContactExport:
    async with uow_factory(context).for_reading() as uow:
        contact = await uow.contacts.get(actor_id)
        deliveries = await uow.deliveries.of_actor(actor_id, EXPORT_LIMIT)
    return ContactExport(contact, deliveries)


async def preview_mail(
    conference_id: str,
    language: Language,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    policy: SendingPolicy,
) -> Preview:
    """The invitation mail of the conference as an invitee would get it (placeholder invitee)."""
    conference = await _known(conference_id, context, uow_factory)
    return preview(conference.details, language, policy)


async def send_test_mail(
    command: SendTestMail,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    mailer: Mailer,
    policy: SendingPolicy,
    limit: TestMailLimit,
    clock: Clock = SYSTEM_CLOCK,
) -> str:
    """Send the conference's invitation mail, marked "[Test] ", to the address given; returns its
    Message-ID. Counted before it is sent, so failed attempts count too."""
    conference = await _known(command.conference_id, context, uow_factory)
    now = clock.now()
    taken = await uow_factory(context).without_transaction().quota.take(conference.id, limit.window(now))
    if taken > limit.per_hour:
        log.warning("test_mail_refused_limit", conference_id=conference.id, limit=limit.per_hour)
        raise TooManyTestMails(limit.seconds_left(now))
    mail = rendered_test_mail(conference.details, command.language, command.email, policy)
    try:
        await mailer.send(mail)
    except (PermanentMailError, TemporaryMailError) as exc:
        log.warning("test_mail_failed", conference_id=conference.id, reason=redact(str(exc)))
        raise TestMailNotSent(redact(str(exc), limit=500)) from exc
    log.info("test_mail_sent", conference_id=conference.id, message_id=mail.message_id, language=command.language)
    return mail.message_id


async def _known(conference_id: str, context: EventContext, uow_factory: UnitOfWorkFactory) -> KnownConference:
    conference = await uow_factory(context).without_transaction().conferences.get(conference_id)
    if conference is None:
        raise ConferenceUnknown(conference_id)
    return conference


# --- consumed events ------------------------------------------------------------------------------


async def keep_conference(
    received: Received[ConferenceDrafted | ConferenceScheduled], *, uow_factory: UnitOfWorkFactory
) -> None:
    """Keep the copy of a conference current (for previews and test mails); nothing is sent."""
    # A conference's events come in order, one at a time (one key): a plain write will do.
    conferences = uow_factory(received.context).without_transaction().conferences
    event = received.event
    known = KnownConference.after(event, await conferences.get(event.conference_id))
    if known is not None:
        await conferences.save(known)


async def update_contact(
    received: Received[ContactChanged],
    *,
    sending: Sending,
) -> None:
    """Keep the contact copy current (from the contact topic, the only place this service learns
    a name and an address from); send the invitations that waited for it, and the notice (GDPR
    Art. 14) when staff just recorded consent on the person's behalf (``domain``: once per actor;
    not to an inactive, erased or unconsenting one)."""
    event = received.event
    # No events to store with a contact, and an actor's events come in order: a plain write.
    contacts = sending.uow_factory(received.context).without_transaction().contacts
    current = await contacts.get(event.actor_id)
    contact = Contact.after(event, current)
    if contact is not None:  # None: an older or repeated event
        await contacts.save(contact)
        await sending.waiting_for(contact, received.context)
    # The notice also on a repeated event, so that a crash after the contact was saved does not
    # lose it: its id is derived, so one stored before is not stored again, a final one not sent.
    latest = contact or current
    if event.consent_recorded_by_staff and latest is not None and latest.reachable:
        notice = Delivery.for_notice(event, notice_message_id(event.actor_id, sending.policy.mail_domain))
        await sending.new([notice], {notice.id: received.context})


SERVICE = "notifications"
ERASED = "not sent: the actor was erased"


async def erase_contact(
    received: Received[ActorErased], *, uow_factory: UnitOfWorkFactory, clock: Clock = SYSTEM_CLOCK
) -> None:
    """Erase what this service holds of the actor (GDPR Art. 17): its contact keeps only its id,
    as erased (no name, no address; it never moves again), and its deliveries not sent yet fail
    with ``ERASED`` (an invitation's with its InvitationFailed, so the coordinator sees why).
    Deliveries hold no name and no address (their reasons are redacted), so the rest of them
    stays. Confirmed with ``ActorErasureConfirmed`` in the same unit of work; run again, it
    changes nothing and confirms again (the same event id)."""
    event, now = received.event, clock.now()
    async with uow_factory(received.context) as uow:
        contact = Contact.after(event, await uow.contacts.get(event.actor_id))
        if contact is not None:
            await uow.contacts.save(contact)
        cancelled = await uow.deliveries.cancel_unsent_of_actor(event.actor_id, ERASED, now)
        for delivery in cancelled:
            if delivery.raises_events:
                failed = delivery.outcome(DeliveryStatus.FAILED, ERASED, now)
                uow.record(failed, event_id=delivery.outcome_event_id(DeliveryStatus.FAILED))
        confirmed, event_id = erasure_confirmed(event.actor_id, SERVICE, now)
        uow.record(confirmed, event_id=event_id)
        await uow.commit()
    log.info("contact_erased", actor_id=event.actor_id, deliveries_cancelled=len(cancelled))


async def send_invitations(
    batch: list[Received[InvitationIssued]],
    *,
    sending: Sending,
) -> None:
    """One mail per invitation and resend number of the batch; the copies of an event within it
    count once."""
    deliveries: dict[str, Delivery] = {}
    contexts: dict[str, EventContext] = {}
    for item in batch:
        invitation = item.event
        delivery = Delivery.for_invitation(
            invitation, invitation_message_id(invitation.invitation_id, invitation.resend, sending.policy.mail_domain)
        )
        deliveries.setdefault(delivery.id, delivery)
        contexts.setdefault(delivery.id, item.context)
    await sending.new(list(deliveries.values()), contexts)


class UnknownInvitation(Exception):
    """An answer to an invitation whose mail this service does not know: nothing to confirm it from."""


async def send_confirmations(
    batch: list[Received[InvitationAnswered]],
    *,
    sending: Sending,
) -> None:
    """One confirmation mail per answer event of the batch; the copies of an event count once.
    Answers to unknown invitations raise ``UnknownInvitation``, after the others were sent."""
    store = sending.uow_factory(batch[0].context).without_transaction()
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
        message_id = confirmation_message_id(event_id, sending.policy.mail_domain)
        delivery = Delivery.for_answer(answered, event_id, invitation.conference, message_id)
        deliveries.setdefault(delivery.id, delivery)
        contexts.setdefault(delivery.id, item.context)
    await sending.new(list(deliveries.values()), contexts)
    if unknown:
        raise UnknownInvitation(f"no invitation mail known for the answered invitation(s) {sorted(unknown)}")
