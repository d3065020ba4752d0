"""What a city coordinator asks of the conferences service: one frozen dataclass per command.

They say what is wanted, already checked at the edge (api.py); the domain decides what follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from quartier_shared.events import Answer, Audience, Venue


@dataclass(frozen=True)
class ScheduleConference:
    district: str  # a code of the district catalogue
    title: str
    starts_at: datetime
    ends_at: datetime
    venue: Venue
    agenda: Sequence[str]
    draft: bool = False  # a draft invites nobody until it is published
    audience: Audience = "district"  # every invitable actor of the district, or only its competence team


@dataclass(frozen=True)
class PublishConference:
    conference_id: str


@dataclass(frozen=True)
class ChangeConference:
    """A coordinator's change: each field given replaces the stored one, None leaves it as it is."""

    conference_id: str
    title: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    venue: Venue | None = None
    agenda: Sequence[str] | None = None


@dataclass(frozen=True)
class CancelConference:
    conference_id: str
    reason: str | None = None  # told to the invitees; no personal data expected, checked as SafeText


@dataclass(frozen=True)
class RemindConference:
    """A coordinator's nudge: remind those who have not answered, now."""

    conference_id: str


@dataclass(frozen=True)
class ResendInvitation:
    conference_id: str
    invitation_id: str


@dataclass(frozen=True)
class AnswerInvitation:
    """An invitee's answer through their personal link (checked by pages.py)."""

    invitation_id: str
    answer: Answer  # accepted, declined or tentative
    attendees: int
    representative: str | None  # a deputy who comes instead
    interpreter_language: str | None  # ISO 639-1
    accessibility: bool  # step-free access needed
    childcare: int  # children needing care
    comment: str | None
