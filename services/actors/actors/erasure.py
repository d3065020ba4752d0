"""The record of an actor's erasure (GDPR Art. 17): who asked, when, and when each service that
holds the actor's data finished erasing it, so the data-protection officer can prove it.

The contract:
- ``ERASING_SERVICES`` are the services that hold an actor's data. The actors service erases its
  part in the same unit of work that creates the record, so its confirmation is there at once;
  the others confirm with ``ActorErasureConfirmed`` and are pending until they do.
- A confirmation counts once: a repeated or later one keeps the first time (an idempotent
  consumer); one from a service not listed changes nothing.
- The record names no person: the actor's id and the officer's token subject only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from quartier_shared.services import ACTORS, CONFERENCES, NOTIFICATIONS

ERASING_SERVICES = (ACTORS.name, CONFERENCES.name, NOTIFICATIONS.name)


@dataclass(frozen=True)
class Erasure:
    actor_id: str
    requested_by: str | None
    requested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: dict[str, datetime] = field(default_factory=dict)  # service -> when it finished

    @classmethod
    def started(cls, actor_id: str, by: str | None, actors_done_at: datetime) -> Erasure:
        return cls(actor_id, by, actors_done_at, {ACTORS.name: actors_done_at})

    def confirmed(self, service: str, at: datetime) -> Erasure | None:
        """The record with ``service`` finished at ``at``; None when that changes nothing."""
        if service not in ERASING_SERVICES or service in self.finished:
            return None
        return replace(self, finished={**self.finished, service: at})

    @property
    def complete(self) -> bool:
        return all(s in self.finished for s in ERASING_SERVICES)
