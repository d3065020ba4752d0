"""The actor: an organisation or person taking part in a district's integration work; and the
competence team of a district: the actors (public offices, the quarter manager, ...) who meet on
their own, besides the district's conference.

Every change returns the new state and the event it raises, or no event when nothing changed, so
the service layer stores both in one unit of work. The events carry the whole actor (event-carried
state), taken from the dataclass's fields, so they cannot forget one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from quartier_shared.events import (
    ActorDeactivated,
    ActorRegistered,
    ActorSnapshot,
    ActorUpdated,
    CompetenceTeamChanged,
    Language,
)

from .commands import RegisterActor

# Fields a quarter manager may change after registration.
EDITABLE = frozenset({"name", "kind", "districts", "email", "language", "consent_to_notifications"})

SnapshotT = TypeVar("SnapshotT", bound=ActorSnapshot)


class ActorNotFound(Exception):
    pass


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    kind: str
    districts: tuple[str, ...]
    email: str
    language: Language
    consent_to_notifications: bool
    active: bool = True
    revision: int = 1
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def register(cls, command: RegisterActor) -> tuple[Actor, ActorRegistered]:
        fields = {**asdict(command), "districts": _once_each(command.districts)}
        actor = cls(id=str(uuid.uuid4()), **fields)
        return actor, actor._snapshot(ActorRegistered)

    def update(self, changes: Mapping[str, Any]) -> tuple[Actor, ActorUpdated | None]:
        unknown = set(changes) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if "districts" in changes:
            changes = {**changes, "districts": _once_each(changes["districts"])}
        if all(getattr(self, k) == v for k, v in changes.items()):
            return self, None
        updated = replace(self, **changes, revision=self.revision + 1, updated_at=datetime.now(UTC))
        return updated, updated._snapshot(ActorUpdated)

    def deactivate(self) -> tuple[Actor, ActorDeactivated | None]:
        if not self.active:
            return self, None
        updated = replace(self, active=False, revision=self.revision + 1, updated_at=datetime.now(UTC))
        return updated, ActorDeactivated(actor_id=self.id, revision=updated.revision)

    def _snapshot(self, event: type[SnapshotT]) -> SnapshotT:
        # Every field the event names, by name (it ignores the rest: created_at, updated_at).
        return event.model_validate({**asdict(self), "actor_id": self.id})


def _once_each(districts: Sequence[str]) -> tuple[str, ...]:
    """Each district once, in the order given."""
    return tuple(dict.fromkeys(districts))


class TeamMembersRefused(ValueError):
    """Some of the ids given are not active actors of the team's district (the message names them)."""


@dataclass(frozen=True)
class CompetenceTeam:
    district: str
    members: tuple[str, ...] = ()
    revision: int = 0  # 0: never set
    updated_at: datetime | None = None

    def set_members(
        self, members: Sequence[str], actors: Mapping[str, Actor]
    ) -> tuple[CompetenceTeam, CompetenceTeamChanged | None]:
        """The team with exactly ``members`` (each once, in the order given), who must be active
        actors of its district (``actors`` holds those found of them); no event when nothing changes."""
        wanted = tuple(dict.fromkeys(members))
        unknown = [m for m in wanted if m not in actors]
        if unknown:
            raise TeamMembersRefused(f"unknown actors: {', '.join(unknown)}")
        outside = [m for m in wanted if not actors[m].active or self.district not in actors[m].districts]
        if outside:
            raise TeamMembersRefused(f"not active actors of district {self.district}: {', '.join(outside)}")
        if wanted == self.members and self.revision:
            return self, None
        changed = replace(self, members=wanted, revision=self.revision + 1, updated_at=datetime.now(UTC))
        event = CompetenceTeamChanged(district=self.district, members=list(wanted), revision=changed.revision)
        return changed, event
