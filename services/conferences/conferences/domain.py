"""Conferences, the invitations they cause, and the roster of actors they are sent to.

The roster is this service's own copy of the actors, built from actor events: only what deciding
who is invited needs (districts, active, consent), never contact data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from quartier_shared.events import ConferenceDetails, Venue

# Namespace for ids derived from other ids, so re-running a fan-out yields the same ids.
ID_NAMESPACE = uuid.UUID("5b0c6a36-8f3e-4f5e-9c1a-2f6f1f0c9a77")


class ConferenceNotFound(Exception):
    pass


class InvitationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class RosterEntry:
    actor_id: str
    districts: tuple[str, ...]
    active: bool
    consent_to_notifications: bool
    revision: int

    @property
    def invitable(self) -> bool:
        return self.active and self.consent_to_notifications


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
    status: str = "scheduled"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def schedule(
        cls,
        *,
        district: str,
        district_name: str,
        timezone: str,
        title: str,
        starts_at: datetime,
        ends_at: datetime,
        venue: Venue,
        agenda: list[str],
        now: datetime | None = None,
    ) -> Conference:
        now = now or datetime.now(UTC)
        if ends_at <= starts_at:
            raise ValueError("ends_at must be after starts_at")
        if starts_at <= now:
            raise ValueError("starts_at must be in the future")
        return cls(
            id=str(uuid.uuid4()),
            district=district,
            district_name=district_name,
            timezone=timezone,
            title=title,
            starts_at=starts_at,
            ends_at=ends_at,
            venue=venue,
            agenda=tuple(agenda),
        )

    @property
    def details(self) -> ConferenceDetails:
        return ConferenceDetails(
            conference_id=self.id,
            district=self.district,
            district_name=self.district_name,
            title=self.title,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            timezone=self.timezone,
            venue=self.venue,
            agenda=list(self.agenda),
            sequence=self.sequence,
        )

    def is_upcoming(self, now: datetime | None = None) -> bool:
        return self.status == "scheduled" and self.starts_at > (now or datetime.now(UTC))

    def invites(self, entry: RosterEntry) -> bool:
        return entry.invitable and self.district in entry.districts


@dataclass(frozen=True)
class Invitation:
    id: str
    conference_id: str
    actor_id: str
    status: InvitationStatus = InvitationStatus.PENDING
    reason: str | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @staticmethod
    def id_for(conference_id: str, actor_id: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"invitation:{conference_id}:{actor_id}"))

    @staticmethod
    def issued_event_id(invitation_id: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"issued:{invitation_id}"))

    @classmethod
    def issue(cls, conference_id: str, actor_id: str) -> Invitation:
        return cls(id=cls.id_for(conference_id, actor_id), conference_id=conference_id, actor_id=actor_id)
