"""Conferences, the invitations they cause, and the roster of actors they are sent to.

Each change returns the new state and the event it raises, so the service layer stores both in
one unit of work. The events carry the conference's details, taken from the dataclass's fields.

Before and after the fan-out: a conference is either scheduled at once (``ConferenceScheduled``:
its district is invited) or drafted (``ConferenceDrafted``: nobody is invited) and published
later, which raises the ``ConferenceScheduled`` its invitations follow from. An invitation may be
sent again (``Invitation.resent``): each attempt has its number (``resend``), and only the outcome
of the latest attempt moves the invitation.

The roster is this service's own copy of the actors, built from actor events: only what deciding
who is invited needs (districts, active, consent), never contact data. It only moves forward by
the actor's revision, so an older or repeated event changes nothing.

Who is invited (``Conference.invites``) depends on the conference's ``audience``: ``district``
invites every invitable actor of the district, ``team`` only those of them who are members of the
district's competence team (``teams.TeamCopy``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property

from quartier_shared.actor_copies import copy_after
from quartier_shared.catalogue import District
from quartier_shared.events import (
    ActorDeactivated,
    ActorSnapshot,
    Answer,
    Audience,
    ConferenceDetails,
    ConferenceDrafted,
    ConferenceScheduled,
    InvitationAnswered,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
    Venue,
)

from .commands import AnswerInvitation, ScheduleConference

# Namespace for ids derived from other ids, so re-running a fan-out yields the same ids.
ID_NAMESPACE = uuid.UUID("5b0c6a36-8f3e-4f5e-9c1a-2f6f1f0c9a77")


class ConferenceNotFound(Exception):
    pass


class InvitationNotFound(Exception):
    pass


class NotNow(Exception):
    """The change is not possible in the conference's present state (HTTP 409); says why."""


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

    @property
    def invitable(self) -> bool:
        return self.active and self.consent_to_notifications

    @classmethod
    def after(cls, event: ActorSnapshot | ActorDeactivated, current: RosterEntry | None) -> RosterEntry | None:
        """The actor's entry once ``event`` is applied; None when it changes nothing."""
        return copy_after(cls, event, current)


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

    @staticmethod
    def id_for(conference_id: str, actor_id: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"invitation:{conference_id}:{actor_id}"))

    @classmethod
    def issue(cls, conference: Conference, actor_id: str) -> tuple[Invitation, InvitationIssued]:
        """The invitation of ``actor_id`` to ``conference``. Its id is derived from both, and so is
        the id of its event (``issued_event_id``), so issuing it again yields the same ones."""
        invitation = cls(id=cls.id_for(conference.id, actor_id), conference_id=conference.id, actor_id=actor_id)
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

    def with_outcome(self, outcome: InvitationSent | InvitationFailed, now: datetime) -> Invitation:
        """Only an outcome of the latest attempt counts (a late one of an earlier attempt would
        undo the resend); within it, sent is final and failed may still become sent."""
        if outcome.resend != self.resend or self.status is InvitationStatus.SENT:
            return self
        if isinstance(outcome, InvitationSent):
            return replace(self, status=InvitationStatus.SENT, reason=None, updated_at=now)
        return replace(self, status=InvitationStatus.FAILED, reason=outcome.reason, updated_at=now)
