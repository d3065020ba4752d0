"""Contacts (this service's copy of actor contact data), conferences (its copy of what their
invitations will say, for previews and test mails), deliveries (one mail each) and the events a
delivery raises when it ends: InvitationSent or InvitationFailed.

The kinds of mail, one delivery each:
- an invitation (``INVITATION``): one per InvitationIssued and resend number, so a coordinator's
  resend is a mail of its own while a repeated event is the same mail. Its outcome raises
  InvitationSent or InvitationFailed, which the conferences service follows.
- a confirmation (``CONFIRMATION``) of an answer: one per InvitationAnswered event (by its event
  id), so a replayed answer is the same mail and a later answer a new one. Its outcome raises no
  event: the invitation's status must not change, and no other service needs to know; the
  delivery record (``GET /deliveries``) is the operators' view of it.
- an update (``UPDATE``) of a sent invitation: one per invitation and new sequence, with the
  conference as it was (``previous``) and whether to ask for a confirmation (``confirm``);
- a cancellation (``CANCELLATION``) of a sent invitation: one per invitation and sequence, with
  the coordinator's reason (``note``);
- a reminder (``REMINDER``): one per invitation and ``reminder_id``.
- a notice (``NOTICE``, GDPR Art. 14) to a person whose consent staff recorded on their behalf
  (a ContactChanged with ``consent_recorded_by_staff``): one per actor, ever
  (``notice:{actor_id}``), so consent recorded again (a new wording, after an unsubscribe) mails
  nothing more: the person has had the information (Art. 14(5)(a)). It has no invitation and no
  conference, but goes through the same records, leases, retries and consent check: its
  ``invitation_id`` and ``conference_id`` are ``NO_INVITATION`` (empty), and its ``conference``
  is a placeholder that never starts and only names the actor's districts (for the footer);
  ``has_conference`` tells it apart.
Updates, cancellations, reminders and notices, like confirmations, raise no event. A cancelled invitation
that was not sent yet, and any update or reminder of it not sent yet, ends ``CANCELLED``: never
sent, and no event (the conferences service cancelled it, it knows).

A contact only moves forward by actor revision. A delivery is sent under a lease: a claim holds
it until ``Lease.until``; a delivery whose lease ran out may be claimed again. One the SMTP server
answered "not now" is ``DEFERRED``: given back, to be tried again from ``next_attempt_at``
(``deferrals``); it is not final, and raises no event until it ends. A final delivery
(sent or failed) is never sent again, and the ids of the events it raised are derived from it,
so recording an outcome twice yields the same event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from quartier_shared.actor_copies import copy_after
from quartier_shared.events import (
    ActorErased,
    Answer,
    ConferenceDetails,
    ConferenceDrafted,
    ConferenceScheduled,
    ContactChanged,
    EventContext,
    InvitationAnswered,
    InvitationCancelled,
    InvitationFailed,
    InvitationIssued,
    InvitationReminded,
    InvitationSent,
    InvitationUpdated,
    Language,
    Reminder,
    Venue,
)

ID_NAMESPACE = uuid.UUID("a7d4f3c2-1b0e-4d6a-8f3b-9e2c5d7a1f40")
INVITATION = "invitation"  # the kinds of delivery
CONFIRMATION = "confirmation"
UPDATE = "update"
CANCELLATION = "cancellation"
REMINDER = "reminder"
NOTICE = "notice"
NO_INVITATION = ""  # a notice's invitation_id and conference_id: it belongs to none
_NEVER = datetime(9999, 12, 31, tzinfo=UTC)  # when a notice's placeholder conference starts
# What a cancellation stops when it comes before they were sent: the invitation and what follows it.
CANCELLABLE = (INVITATION, UPDATE, REMINDER)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # to be claimed (a claim gave it back unsent)
    WAITING_FOR_CONTACT = "waiting_for_contact"  # the actor's contact data has not arrived yet
    SENDING = "sending"  # leased to one claim; a lease that ran out may be taken over
    # The SMTP server answered "not now" (4xx, throttling): tried again from ``next_attempt_at``
    # (``deferrals``), claimable like a pending one.
    DEFERRED = "deferred"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the conference was cancelled before this mail went out: never sent

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)


@dataclass(frozen=True)
class Contact:
    id: str  # the actor's id: a contact is an actor's contact data
    name: str
    email: str
    language: Language
    consent_to_notifications: bool
    active: bool
    revision: int
    # Erased (GDPR Art. 17): no name, no address, never reachable, and it never moves again.
    erased: bool = False

    @property
    def reachable(self) -> bool:
        """Every mail respects opt-out, whatever the sender believed when it issued it."""
        return self.active and self.consent_to_notifications and not self.erased

    @classmethod
    def after(cls, event: ContactChanged | ActorErased, current: Contact | None) -> Contact | None:
        """The actor's contact once ``event`` is applied; None when it changes nothing. An erased
        contact changes no more, whatever revision an event carries (a replay of the contact
        topic before compaction brings back neither its name nor its address)."""
        if current is not None and current.erased:
            return None
        if isinstance(event, ActorErased):
            return cls.erased_copy(event, current)
        return copy_after(cls, event, current)

    @classmethod
    def erased_copy(cls, event: ActorErased, current: Contact | None) -> Contact:
        """What stays of the actor's contact once it is erased: its id, kept as erased, so that no
        older event brings anything back (also when this service never had a copy of it)."""
        revision = max(event.revision, current.revision if current else 0)
        language: Language = current.language if current else "de"
        return cls(event.actor_id, "", "", language, False, False, revision, erased=True)


@dataclass(frozen=True)
class KnownConference:
    """This service's copy of a conference, from ConferenceDrafted and ConferenceScheduled: the
    details its invitations carry, so its mail can be previewed before anyone is invited."""

    id: str  # the conference's id
    details: ConferenceDetails

    @classmethod
    def after(
        cls, event: ConferenceDrafted | ConferenceScheduled, current: KnownConference | None
    ) -> KnownConference | None:
        """The copy once ``event`` is applied; None when it changes nothing. A later sequence wins;
        the same sequence says the same (publishing a draft keeps its details), so a repeated or
        older event changes nothing."""
        if current is not None and event.details.sequence <= current.details.sequence:
            return None
        return cls(id=event.conference_id, details=event.details)


@dataclass(frozen=True)
class Lease:
    """One claim's hold on the deliveries it sends: its token, and until when it holds them."""

    token: str
    until: datetime

    @classmethod
    def starting(cls, now: datetime, seconds: float) -> Lease:
        return cls(token=str(uuid.uuid4()), until=now + timedelta(seconds=seconds))


@dataclass(frozen=True)
class Reply:
    """An answer as its confirmation mail shows it: the fields of InvitationAnswered it needs."""

    answer: Answer
    attendees: int
    interpreter_language: str | None = None
    step_free_access: bool = False
    children: int = 0

    @classmethod
    def of(cls, event: InvitationAnswered) -> Reply:
        return cls(
            answer=event.answer,
            attendees=event.attendees,
            interpreter_language=event.interpreter_language,
            step_free_access=event.step_free_access,
            children=event.children,
        )


@dataclass(frozen=True)
class Delivery:
    id: str
    kind: str
    invitation_id: str
    conference_id: str
    actor_id: str
    conference: ConferenceDetails
    status: DeliveryStatus
    message_id: str | None = None
    reason: str | None = None
    lease_until: datetime | None = None
    resend: int = 0  # invitations: 0, or the coordinator's n-th resend
    reply: Reply | None = None  # confirmations: the answer they confirm
    previous: ConferenceDetails | None = None  # updates: the conference as the invitee last saw it
    confirm: bool = False  # updates: ask one who accepted to confirm (after a change of time)
    note: str | None = None  # cancellations: the coordinator's reason, if given
    reminder: Reminder | None = None  # reminders: which text
    reminder_id: str | None = None  # reminders: which one (P7D, P1D, a nudge), one mail each
    deferrals: int = 0  # temporary refusals so far (``deferrals``)
    deferred_since: datetime | None = None  # the first of them: SMTP_RETRY_FOR counts from here
    next_attempt_at: datetime | None = None  # deferred: when it is tried again
    paced_until: datetime | None = None  # deferred to its slot of the relay's pace, which it keeps
    # Deferred: the event it answers, so that its outcome, raised later by another run, still
    # carries the correlation id of the request that started it and names its cause.
    trigger: EventContext | None = None

    @staticmethod
    def id_for(invitation_id: str, kind: str, resend: int = 0) -> str:
        """An invitation's delivery (``resend`` > 0: the n-th resend of it); documents stored
        before resends existed keep their ids, as resend 0 has no suffix."""
        return f"{kind}:{invitation_id}" + (f":resend-{resend}" if resend else "")

    @staticmethod
    def confirmation_id(answer_event_id: str) -> str:
        return f"{CONFIRMATION}:{answer_event_id}"

    @classmethod
    def for_invitation(cls, invitation: InvitationIssued, message_id: str) -> Delivery:
        """The delivery of an invitation's mail (or of one resend of it); its id is derived, so a
        redelivery finds it."""
        return cls(
            id=cls.id_for(invitation.invitation_id, INVITATION, invitation.resend),
            kind=INVITATION,
            invitation_id=invitation.invitation_id,
            conference_id=invitation.conference_id,
            actor_id=invitation.actor_id,
            conference=invitation.conference,
            status=DeliveryStatus.PENDING,
            message_id=message_id,
            resend=invitation.resend,
        )

    @classmethod
    def for_answer(
        cls, answered: InvitationAnswered, event_id: str, conference: ConferenceDetails, message_id: str
    ) -> Delivery:
        """The confirmation of one answer, by the id of its event: a replay finds it."""
        return cls(
            id=cls.confirmation_id(event_id),
            kind=CONFIRMATION,
            invitation_id=answered.invitation_id,
            conference_id=answered.conference_id,
            actor_id=answered.actor_id,
            conference=conference,
            status=DeliveryStatus.PENDING,
            message_id=message_id,
            reply=Reply.of(answered),
        )

    @classmethod
    def for_update(cls, updated: InvitationUpdated, message_id: str) -> Delivery:
        """The update mail of a sent invitation, one per new sequence: a repeated event finds it."""
        return cls(
            id=f"{UPDATE}:{updated.invitation_id}:seq-{updated.conference.sequence}",
            kind=UPDATE,
            invitation_id=updated.invitation_id,
            conference_id=updated.conference_id,
            actor_id=updated.actor_id,
            conference=updated.conference,
            status=DeliveryStatus.PENDING,
            message_id=message_id,
            previous=updated.previous,
            confirm=updated.confirm,
        )

    @classmethod
    def for_cancellation(cls, cancelled: InvitationCancelled, message_id: str) -> Delivery:
        """The cancellation mail of a sent invitation, one per sequence."""
        return cls(
            id=f"{CANCELLATION}:{cancelled.invitation_id}:seq-{cancelled.conference.sequence}",
            kind=CANCELLATION,
            invitation_id=cancelled.invitation_id,
            conference_id=cancelled.conference_id,
            actor_id=cancelled.actor_id,
            conference=cancelled.conference,
            status=DeliveryStatus.PENDING,
            message_id=message_id,
            note=cancelled.reason,
        )

    @classmethod
    def for_reminder(cls, reminded: InvitationReminded, message_id: str) -> Delivery:
        """One reminder mail per invitation and ``reminder_id``."""
        return cls(
            id=f"{REMINDER}:{reminded.invitation_id}:{reminded.reminder_id}",
            kind=REMINDER,
            invitation_id=reminded.invitation_id,
            conference_id=reminded.conference_id,
            actor_id=reminded.actor_id,
            conference=reminded.conference,
            status=DeliveryStatus.PENDING,
            message_id=message_id,
            reminder=reminded.reminder,
            reminder_id=reminded.reminder_id,
        )

    @classmethod
    def for_notice(cls, contact: ContactChanged, message_id: str) -> Delivery:
        """The notice (GDPR Art. 14) to the actor of ``contact``: one per actor (see the module
        docstring); its placeholder conference names the actor's districts and never starts."""
        districts = ", ".join(contact.districts)
        placeholder = ConferenceDetails(
            conference_id=NO_INVITATION,
            district=districts,
            district_name=districts,
            title="",
            starts_at=_NEVER,
            ends_at=_NEVER,
            timezone="UTC",
            venue=Venue(name="", address=""),
            agenda=[],
        )
        return cls(
            id=f"{NOTICE}:{contact.actor_id}",
            kind=NOTICE,
            invitation_id=NO_INVITATION,
            conference_id=NO_INVITATION,
            actor_id=contact.actor_id,
            conference=placeholder,
            status=DeliveryStatus.PENDING,
            message_id=message_id,
        )

    @classmethod
    def cancelled_invitation(cls, cancelled: InvitationCancelled, message_id: str) -> Delivery:
        """The invitation of a cancellation that came before any InvitationIssued of it was stored
        (both may be in one batch, handled at once): stored cancelled, so that one is never sent."""
        issued = InvitationIssued(
            invitation_id=cancelled.invitation_id,
            conference_id=cancelled.conference_id,
            actor_id=cancelled.actor_id,
            conference=cancelled.conference,
        )
        return replace(cls.for_invitation(issued, message_id), status=DeliveryStatus.CANCELLED)

    @property
    def raises_events(self) -> bool:
        """Only an invitation's outcome is an event (see the module docstring)."""
        return self.kind == INVITATION

    def claimable(self, now: datetime) -> bool:
        """Not final, and held by no claim whose lease still runs."""
        if self.status is DeliveryStatus.SENDING:
            return self.lease_until is not None and self.lease_until < now
        return not self.status.final

    @property
    def has_conference(self) -> bool:
        """False for a notice: its ``conference`` is a placeholder (see the module docstring)."""
        return self.kind != NOTICE

    def started(self, now: datetime) -> bool:
        """The conference has started, as this delivery knows it (its latest details): nothing is
        mailed any more, but the confirmation of an answer (answers may change until the end) and
        a notice (it has no conference)."""
        return self.kind != CONFIRMATION and self.has_conference and now >= self.conference.starts_at

    def outcome(self, status: DeliveryStatus, reason: str | None, now: datetime) -> InvitationSent | InvitationFailed:
        """The event that says how sending ended: ``SENT``, or ``FAILED`` with the reason."""
        if status is DeliveryStatus.SENT:
            assert self.message_id is not None
            return InvitationSent(
                invitation_id=self.invitation_id,
                conference_id=self.conference_id,
                actor_id=self.actor_id,
                message_id=self.message_id,
                sent_at=now,
                resend=self.resend,
            )
        return InvitationFailed(
            invitation_id=self.invitation_id,
            conference_id=self.conference_id,
            actor_id=self.actor_id,
            reason=reason or "unknown",
            failed_at=now,
            resend=self.resend,
        )

    def outcome_event_id(self, status: DeliveryStatus) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"{status.value}:{self.id}"))


@dataclass(frozen=True)
class HandOver:
    """What a claim may do with the deliveries it holds at the moment of sending: ``send`` them (as
    stored now), but not the ``cancelled`` ones (ids). A delivery cancelled after an earlier claim
    had handed it to the SMTP server is sent again, as any mail of a claim that ended unrecorded
    is (the same Message-ID): it may have gone out, and this way its cancellation follows the
    invitation in every mailbox, never alone."""

    send: list[Delivery]
    cancelled: set[str]


@dataclass(frozen=True)
class Outcome:
    """How sending one delivery ended: ``SENT``, or ``FAILED`` with the reason; or, not ended,
    ``DEFERRED`` with the server's answer as the reason, to be tried again at ``retry_at``."""

    delivery: Delivery
    status: DeliveryStatus
    reason: str | None = None
    retry_at: datetime | None = None  # DEFERRED only


@dataclass(frozen=True)
class LoggedOutcome:
    """An outcome as the recorder logs it the moment the SMTP server answered (``recording``):
    what finishes its delivery and raises its event later, in a fold, by any instance. The
    delivery's own details are read back then; only what the send changed is kept here."""

    delivery_id: str
    token: str  # of the claim that sent it: the fold records it only while that claim holds it
    status: DeliveryStatus
    at: datetime  # when the server answered: the event's time
    context: EventContext  # of the event the delivery answers
    reason: str | None = None
    retry_at: datetime | None = None  # DEFERRED only, and the four below
    deferrals: int = 0
    deferred_since: datetime | None = None
    paced_until: datetime | None = None
    trigger: EventContext | None = None

    @classmethod
    def of(cls, outcome: Outcome, token: str, context: EventContext, at: datetime) -> LoggedOutcome:
        d = outcome.delivery
        return cls(
            delivery_id=d.id,
            token=token,
            status=outcome.status,
            at=at,
            context=context,
            reason=outcome.reason,
            retry_at=outcome.retry_at,
            deferrals=d.deferrals,
            deferred_since=d.deferred_since,
            paced_until=d.paced_until,
            trigger=d.trigger,
        )

    def applied_to(self, stored: Delivery) -> Outcome:
        """The outcome again, on the delivery as stored now."""
        delivery = stored
        if self.status is DeliveryStatus.DEFERRED:
            delivery = replace(
                stored,
                deferrals=self.deferrals,
                deferred_since=self.deferred_since,
                paced_until=self.paced_until,
                trigger=self.trigger,
            )
        return Outcome(delivery, self.status, self.reason, self.retry_at)


@dataclass(frozen=True)
class OutcomeLogEntry:
    """One write of the recorder: the outcomes that arrived while the write before was in flight."""

    id: str
    owner: str  # the instance that wrote it, which folds it (others take it over after a while)
    created_at: datetime
    outcomes: tuple[LoggedOutcome, ...]
