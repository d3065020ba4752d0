"""The actor: an organisation or person taking part in a district's integration work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from quartier_shared.events import ActorDeactivated, ActorRegistered, ActorUpdated

Language = Literal["de", "en"]

# Fields a quarter manager may change after registration.
EDITABLE = ("name", "kind", "districts", "email", "language", "consent_to_notifications")


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
    def register(
        cls,
        *,
        name: str,
        kind: str,
        districts: list[str],
        email: str,
        language: Language,
        consent_to_notifications: bool,
    ) -> tuple[Actor, ActorRegistered]:
        actor = cls(
            id=str(uuid.uuid4()),
            name=name,
            kind=kind,
            districts=tuple(dict.fromkeys(districts)),
            email=email,
            language=language,
            consent_to_notifications=consent_to_notifications,
        )
        return actor, ActorRegistered(**actor.snapshot())

    def update(self, changes: dict[str, Any]) -> tuple[Actor, ActorUpdated | None]:
        """Apply changes; no event when nothing actually changed."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if "districts" in changes:
            changes = {**changes, "districts": tuple(dict.fromkeys(changes["districts"]))}
        if all(getattr(self, k) == v for k, v in changes.items()):
            return self, None
        updated = replace(self, **changes, revision=self.revision + 1, updated_at=datetime.now(UTC))
        return updated, ActorUpdated(**updated.snapshot())

    def deactivate(self) -> tuple[Actor, ActorDeactivated | None]:
        if not self.active:
            return self, None
        updated = replace(self, active=False, revision=self.revision + 1, updated_at=datetime.now(UTC))
        return updated, ActorDeactivated(actor_id=self.id, revision=updated.revision)

    def snapshot(self) -> dict[str, Any]:
        return {
            "actor_id": self.id,
            "revision": self.revision,
            "name": self.name,
            "kind": self.kind,
            "districts": list(self.districts),
            "email": self.email,
            "language": self.language,
            "consent_to_notifications": self.consent_to_notifications,
            "active": self.active,
        }
