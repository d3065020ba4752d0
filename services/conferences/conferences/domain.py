"""Conferences, the invitations they cause, and the roster of actors they are sent to.

Each change returns the new state and the event it raises, so the service layer stores both in
one unit of work. The events carry the conference's details, taken from the dataclass's fields.

Before and after the fan-out: a conference is either scheduled at once (``ConferenceScheduled``:
its district is invited) or drafted (``ConferenceDrafted``: nobody is invited) and published
later, which raises the ``ConferenceScheduled`` its invitations follow from. An invitation may be
sent again (``Invitation.resent``): each attempt has its number (``resend``), and only the outcome
of the latest attempt moves the invitation.

Changes and cancellation: ``Conference.change`` raises ``ConferenceChanged`` and
``Conference.cancel`` ``ConferenceCancelled``, each with the calendar ``sequence`` one higher;
neither is possible once the conference has started, and a cancelled conference is final. Each
invitation remembers the ``sequence`` its invitee was last told of (issued, updated, cancelled), so
the per-invitation fan-outs that follow (``Invitation.updated``, ``Invitation.cancelled``) reach
each invitation once, and their event ids are derived from invitation and sequence.

Reminders: a ``Reminder`` is a due time of a conference (one per offset of ``REMINDERS_BEFORE``,
or a coordinator's nudge), stored, not held in memory; firing it raises one ``InvitationReminded``
per invitation that was sent, by its answer (``Reminder.event_for``), with ids derived from the
reminder, its due time and the invitation.

The roster is this service's own copy of the actors, built from actor events: only what deciding
who is invited needs (districts, active, consent), never contact data. It only moves forward by
the actor's revision, so an older or repeated event changes nothing.

Who is invited (``Conference.invites``) depends on the conference's ``audience``: ``district``
invites every invitable actor of the district, ``team`` only those of them who are members of the
district's competence team (``teams.TeamCopy``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property

from quartier_shared.actor_copies import copy_after
from quartier_shared.catalogue import District
from quartier_shared.events import (
    ActorDeactivated,
    ActorErased,
    ActorSnapshot,
    Answer,
    Audience,
    ConferenceCancelled,
    ConferenceChanged,
    ConferenceDetails,
    ConferenceDrafted,
    ConferenceScheduled,
    InvitationAnswered,
    InvitationCancelled,
    InvitationFailed,
    InvitationIssued,
    InvitationReminded,
    InvitationSent,
    InvitationUpdated,
    Venue,
)

from .commands import AnswerInvitation, ChangeConference, ScheduleConference

# Namespace for ids derived from other ids, so re-running a fan-out yields the same ids.
ID_NAMESPACE = uuid.UUID("5b0c6a36-8f3e-4f5e-9c1a-2f6f1f0c9a77")


class ConferenceNotFound(Exception):
    pass


class InvitationNotFound(Exception):
    pass


class NotNow(Exception):
    """The change is not possible in the conference's present state (HTTP 409); says why."""


class InvalidChange(ValueError):
    """A change that is wrong only together with what is stored (an end before the start): HTTP
    422 naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# A conference lasts at most this long (the API checks it for a new one; a change is checked here).
LONGEST = timedelta(hours=24)


class ConferenceStatus(StrEnum):
    DRAFT = "draft"  # nobody invited yet; published, it becomes scheduled
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"  # final: takes no answers, sends nothing more


class ConferenceGone(Exception):
    """The conference of an invitation was cancelled or has begun: it takes no more answers."""


class InvitationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"  # final for its attempt: only a resend (a new attempt) makes it pending again
    FAILED = "failed"  # may still become sent, when a later try of the same attempt got through


@dataclass(frozen=True)
class RosterEntry:
    id: str  # the actor's id
    districts: tuple[str, ...]
    active: bool
    consent_to_notifications: bool
    revision: int
    # Erased (GDPR Art. 17): inactive for good; its invitations take no more answers.
    erased: bool = False

    @property
    def invitable(self) -> bool:
        return self.active and self.consent_to_notifications and not self.erased

    @classmethod
    def after(cls, event: ActorSnapshot | ActorDeactivated, current: RosterEntry | None) -> RosterEntry | None:
        """The actor's entry once ``event`` is applied; None when it changes nothing. An erased
        entry changes no more, whatever revision an event carries."""
        if current is not None and current.erased:
            return None
        return copy_after(cls, event, current)

    @classmethod
    def erased_after(cls, event: ActorErased, current: RosterEntry | None) -> RosterEntry | None:
        """The entry once the actor was erased (kept, also for an actor never seen here, so no
        older event brings it back); None when it is erased already."""
        if current is None:
            return cls(event.actor_id, (), False, False, event.revision, erased=True)
        if current.erased:
            return None
        return replace(current, active=False, revision=max(event.revision, current.revision), erased=True)


@dataclass(frozen=True)
class Conference:
    id: str
    district: str
    district_name: str
    timezone: str
    title: str
    starts_at: datetime
    ends_at: datetime
    venue: Venue
    agenda: tuple[str, ...]
    sequence: int = 0
    status: ConferenceStatus = ConferenceStatus.SCHEDULED
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    audience: Audience = "district"  # who is invited: every invitable actor of the district, or its team

    @classmethod
    def schedule(
        cls, command: ScheduleConference, *, district: District, timezone: str, now: datetime | None = None
    ) -> tuple[Conference, ConferenceScheduled | ConferenceDrafted]:
        """A new conference: scheduled (its district is invited), or a draft when the command says so."""
        if command.ends_at <= command.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if command.starts_at <= (now or datetime.now(UTC)):
            raise ValueError("starts_at must be in the future")
        fields = {**asdict(command), "district": district.code, "agenda": tuple(command.agenda)}
        draft = fields.pop("draft")
        status = ConferenceStatus.DRAFT if draft else ConferenceStatus.SCHEDULED
        conference = cls(id=str(uuid.uuid4()), district_name=district.name, timezone=timezone, status=status, **fields)
        if draft:
            return conference, ConferenceDrafted(conference_id=conference.id, details=conference.details)
        return conference, ConferenceScheduled(conference_id=conference.id, details=conference.details)

    def publish(self, now: datetime | None = None) -> tuple[Conference, ConferenceScheduled | None]:
        """The draft, scheduled: its ConferenceScheduled (same details) starts the fan-out. Publishing
        a conference that is scheduled already changes nothing and raises nothing. A draft whose
        start has passed cannot be published: nobody could come any more."""
        if self.status is ConferenceStatus.SCHEDULED:
            return self, None
        if self.status is ConferenceStatus.CANCELLED:
            raise NotNow("the conference has been cancelled")
        if self.starts_at <= (now or datetime.now(UTC)):
            raise NotNow("the conference has already started; change its date before publishing it")
        published = replace(self, status=ConferenceStatus.SCHEDULED)
        return published, ConferenceScheduled(conference_id=self.id, details=published.details)

    @property
    def published_event_id(self) -> str:
        """Derived, so two publishes racing each other raise one event, not two."""
        return str(uuid.uuid5(ID_NAMESPACE, f"published:{self.id}"))

    @cached_property
    def details(self) -> ConferenceDetails:
        """What its invitations say about it: every field the details name, by name. Made once per
        conference object, as a fan-out issues hundreds of invitations from one."""
        return ConferenceDetails.model_validate({**asdict(self), "conference_id": self.id})

    def has_started(self, now: datetime) -> bool:
        return self.starts_at <= now

    def change(self, command: ChangeConference, now: datetime) -> tuple[Conference, ConferenceChanged | None]:
        """The conference with the fields ``command`` gives, ``sequence`` one higher, and its
        ConferenceChanged (details now and before). A change that changes nothing raises nothing.
        NotNow when cancelled, or scheduled and started (a draft may be moved off a passed date)."""
        if self.status is ConferenceStatus.CANCELLED:
            raise NotNow("the conference has been cancelled")
        if self.status is ConferenceStatus.SCHEDULED and self.has_started(now):
            raise NotNow("the conference has already started")
        given = {
            "title": command.title,
            "starts_at": command.starts_at,
            "ends_at": command.ends_at,
            "venue": command.venue,
            "agenda": tuple(command.agenda) if command.agenda is not None else None,
        }
        changes = {name: value for name, value in given.items() if value is not None and value != getattr(self, name)}
        if not changes:
            return self, None
        changed = replace(self, **changes, sequence=self.sequence + 1)  # type: ignore[arg-type]
        blame = "ends_at" if command.ends_at is not None else "starts_at"
        if changed.ends_at <= changed.starts_at:
            raise InvalidChange(blame, "ends_at must be after starts_at")
        if changed.ends_at - changed.starts_at > LONGEST:
            raise InvalidChange(blame, "a conference lasts at most 24 hours")
        return changed, ConferenceChanged(conference_id=self.id, details=changed.details, previous=self.details)

    def time_changed(self, previous: ConferenceDetails) -> bool:
        return (self.starts_at, self.ends_at) != (previous.starts_at, previous.ends_at)

    def cancel(self, reason: str | None, now: datetime) -> tuple[Conference, ConferenceCancelled | None]:
        """Cancelled, ``sequence`` one higher, and its ConferenceCancelled. Cancelling a cancelled
        conference changes nothing and raises nothing (a second DELETE is harmless). NotNow once a
        scheduled conference has started: it took place."""
        if self.status is ConferenceStatus.CANCELLED:
            return self, None
        if self.status is ConferenceStatus.SCHEDULED and self.has_started(now):
            raise NotNow("the conference has already started")
        cancelled = replace(self, status=ConferenceStatus.CANCELLED, sequence=self.sequence + 1)
        return cancelled, ConferenceCancelled(conference_id=self.id, details=cancelled.details, reason=reason)

    def reminders(self, offsets: Sequence[tuple[str, timedelta]], now: datetime) -> list[Reminder]:
        """Its due reminders, one per (name, offset) before the start; those already past are skipped.
        None for a draft or a cancelled conference."""
        if self.status is not ConferenceStatus.SCHEDULED:
            return []
        due = [(name, self.starts_at - offset) for name, offset in offsets]
        return [Reminder.of(self.id, name, at) for name, at in due if at > now]

    def is_upcoming(self, now: datetime | None = None) -> bool:
        """Scheduled (not a draft) and still to come: who joins the district now is invited to it."""
        return self.status is ConferenceStatus.SCHEDULED and self.starts_at > (now or datetime.now(UTC))

    def invites(self, entry: RosterEntry, team: Collection[str] = ()) -> bool:
        """Whether ``entry`` is to be invited; ``team``: the members of the district's competence
        team, which a team meeting (``audience == "team"``) invites only."""
        invitable = entry.invitable and self.district in entry.districts
        return invitable and (self.audience == "district" or entry.id in team)

    def audience_of(self, invitable: Collection[str], team: Collection[str]) -> list[str]:
        """Of the ``invitable`` actors of the district, those this conference invites."""
        return [actor_id for actor_id in invitable if self.audience == "district" or actor_id in team]


@dataclass(frozen=True)
class InvitationAnswer:
    """What an invitee answered last. The deputy's name and the comment stay here: they are in no
    event and no log line."""

    answer: Answer  # accepted, declined or tentative
    attendees: int
    representative: str | None
    interpreter_language: str | None
    accessibility: bool
    childcare: int
    comment: str | None
    answered_at: datetime

    @property
    def coming(self) -> bool:
        """Only an acceptance counts towards people, children and needs: a tentative answer is
        not yet a seat to plan for."""
        return self.answer == "accepted"

    @property
    def anonymous(self) -> bool:
        """Holds no free text (the deputy's name, the comment)."""
        return self.representative is None and self.comment is None

    def anonymised(self) -> InvitationAnswer:
        """The answer without its free text; the counts (answer, attendees, children, step-free
        access, interpreter language) stay, so the conference's figures do not change."""
        return replace(self, representative=None, comment=None)


@dataclass(frozen=True)
class Invitation:
    id: str
    conference_id: str
    actor_id: str
    status: InvitationStatus = InvitationStatus.PENDING
    reason: str | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    resend: int = 0  # the latest attempt: 0 for the invitation itself, n for the n-th resend
    answer: InvitationAnswer | None = None  # None until the invitee answers; the latest replaces it
    # The conference's sequence the invitee was last told of (issued, updated or cancelled).
    sequence: int = 0

    @staticmethod
    def id_for(conference_id: str, actor_id: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"invitation:{conference_id}:{actor_id}"))

    @classmethod
    def issue(cls, conference: Conference, actor_id: str) -> tuple[Invitation, InvitationIssued]:
        """The invitation of ``actor_id`` to ``conference``. Its id is derived from both, and so is
        the id of its event (``issued_event_id``), so issuing it again yields the same ones."""
        invitation = cls(
            id=cls.id_for(conference.id, actor_id),
            conference_id=conference.id,
            actor_id=actor_id,
            sequence=conference.sequence,
        )
        issued = InvitationIssued(
            invitation_id=invitation.id,
            conference_id=conference.id,
            actor_id=actor_id,
            conference=conference.details,
        )
        return invitation, issued

    @property
    def issued_event_id(self) -> str:
        """Of the InvitationIssued of its latest attempt; the first keeps the id it always had."""
        suffix = f":resend-{self.resend}" if self.resend else ""
        return str(uuid.uuid5(ID_NAMESPACE, f"issued:{self.id}{suffix}"))

    def resent(self, conference: Conference, now: datetime) -> tuple[Invitation, InvitationIssued]:
        """A new attempt (after a failure, or a corrected address): pending again until its own
        outcome arrives, and an InvitationIssued with the attempt's number, which notifications
        sends as a mail of its own. Not for a draft (it has no invitations to send) nor for a
        conference that has started."""
        if conference.status is not ConferenceStatus.SCHEDULED:
            raise NotNow("the conference is a draft: publish it to send its invitations")
        if conference.starts_at <= now:
            raise NotNow("the conference has already started")
        again = replace(self, resend=self.resend + 1, status=InvitationStatus.PENDING, reason=None, updated_at=now)
        issued = InvitationIssued(
            invitation_id=self.id,
            conference_id=conference.id,
            actor_id=self.actor_id,
            conference=conference.details,
            resend=again.resend,
        )
        return again, issued

    def updated(self, conference: Conference, previous: ConferenceDetails) -> tuple[Invitation, InvitationUpdated]:
        """Told of the change to ``conference`` (as it is now; ``previous`` as it was): asks one who
        accepted to confirm when the time changed. Its answer stays."""
        accepted = self.answer is not None and self.answer.answer == "accepted"
        event = InvitationUpdated(
            invitation_id=self.id,
            conference_id=self.conference_id,
            actor_id=self.actor_id,
            conference=conference.details,
            previous=previous,
            confirm=accepted and conference.time_changed(previous),
        )
        return replace(self, sequence=conference.sequence), event

    def cancelled(self, conference: Conference, reason: str | None) -> tuple[Invitation, InvitationCancelled]:
        event = InvitationCancelled(
            invitation_id=self.id,
            conference_id=self.conference_id,
            actor_id=self.actor_id,
            conference=conference.details,
            reason=reason,
        )
        return replace(self, sequence=conference.sequence), event

    def told_event_id(self, kind: str) -> str:
        """Of the update or cancellation at its ``sequence``: a fan-out run again yields the same id."""
        return str(uuid.uuid5(ID_NAMESPACE, f"{kind}:{self.id}:{self.sequence}"))

    def answered(
        self, command: AnswerInvitation, conference: Conference, now: datetime
    ) -> tuple[Invitation, InvitationAnswered]:
        """The invitation with ``command`` as its answer (replacing any earlier one), and its
        event; ConferenceGone once the conference is cancelled or has begun."""
        if not conference.is_upcoming(now):
            raise ConferenceGone(conference.id)
        answer = InvitationAnswer(
            answer=command.answer,
            attendees=command.attendees,
            representative=command.representative,
            interpreter_language=command.interpreter_language,
            accessibility=command.accessibility,
            childcare=command.childcare,
            comment=command.comment,
            answered_at=now,
        )
        event = InvitationAnswered(
            invitation_id=self.id,
            conference_id=self.conference_id,
            actor_id=self.actor_id,
            answer=command.answer,
            attendees=command.attendees,
            interpreter_language=command.interpreter_language,
            step_free_access=command.accessibility,
            children=command.childcare,
            answered_at=now,
        )
        return replace(self, answer=answer), event

    def erased(self) -> Invitation | None:
        """The invitation once its actor was erased (GDPR Art. 17): its answer without free text;
        None when it holds none (nothing to change)."""
        if self.answer is None or self.answer.anonymous:
            return None
        return replace(self, answer=self.answer.anonymised())

    def with_outcome(self, outcome: InvitationSent | InvitationFailed, now: datetime) -> Invitation:
        """Only an outcome of the latest attempt counts (a late one of an earlier attempt would
        undo the resend); within it, sent is final and failed may still become sent; but a
        bounce (a failure reported after the mail was accepted) makes a sent one failed."""
        if outcome.resend != self.resend:
            return self
        bounce = isinstance(outcome, InvitationFailed) and outcome.bounced
        if self.status is InvitationStatus.SENT and not bounce:
            return self
        if isinstance(outcome, InvitationSent):
            return replace(self, status=InvitationStatus.SENT, reason=None, updated_at=now)
        return replace(self, status=InvitationStatus.FAILED, reason=outcome.reason, updated_at=now)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NUDGE_PREFIX = "nudge-"


@dataclass(frozen=True)
class Reminder:
    """A due time of a conference's reminder. ``name`` is the offset as configured (``P7D``) or a
    coordinator's nudge (``nudge-20270301T120000Z``): a nudge reminds only those without an answer.
    While a worker fires it, it holds a lease (``owner``, ``lease_until``) and notes the last
    invitation it reached (``after``), so another worker resumes there, not from the start."""

    id: str
    conference_id: str
    name: str
    due_at: datetime
    after: str | None = None
    owner: str | None = None
    lease_until: datetime = EPOCH

    @classmethod
    def of(cls, conference_id: str, name: str, due_at: datetime) -> Reminder:
        """One per conference and name: the id is derived from both."""
        return cls(id=f"{conference_id}/{name}", conference_id=conference_id, name=name, due_at=due_at)

    @classmethod
    def nudge(cls, conference_id: str, now: datetime) -> Reminder:
        return cls.of(conference_id, f"{NUDGE_PREFIX}{now.astimezone(UTC):%Y%m%dT%H%M%SZ}", now)

    @property
    def is_nudge(self) -> bool:
        return self.name.startswith(NUDGE_PREFIX)

    def event_for(self, invitation: Invitation, conference: Conference) -> tuple[InvitationReminded, str] | None:
        """The reminder for this invitee and its event id, or None: only invitations that were sent;
        ``please_answer`` without an answer, ``see_you`` to one who accepted or answered
        tentatively (not for a nudge), nothing to one who declined."""
        if invitation.status is not InvitationStatus.SENT:
            return None
        answer = invitation.answer.answer if invitation.answer else None
        if answer is None:
            kind = "please_answer"
        elif answer in ("accepted", "tentative") and not self.is_nudge:
            kind = "see_you"
        else:
            return None
        event = InvitationReminded(
            invitation_id=invitation.id,
            conference_id=conference.id,
            actor_id=invitation.actor_id,
            conference=conference.details,
            reminder=kind,
            reminder_id=self.name,
        )
        # The due time is part of it: a reminder moved by a change of time is another one.
        key = f"reminded:{self.id}:{self.due_at.astimezone(UTC).isoformat()}:{invitation.id}"
        return event, str(uuid.uuid5(ID_NAMESPACE, key))
