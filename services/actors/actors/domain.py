"""The actor: an organisation or person taking part in a district's integration work; and the
competence team of a district: the actors (public offices, the quarter manager, ...) who meet on
their own, besides the district's conference.

Every change returns the new state and the event it raises, or no event when nothing changed, so
the service layer stores both in one unit of work. The events carry the whole actor (event-carried
state), taken from the dataclass's fields, so they cannot forget one.

The actor events (topic ``quartier.actors``) carry no name and no e-mail address: ``contact()``
is the ``ContactChanged`` (topic ``quartier.contacts``) the service layer records with each of
them, with the same revision.

Consent is kept as records (``consent.py``); ``consent_to_notifications`` is the current one's
``given``, derived, never set on its own. A new e-mail address withdraws consent (a record with
reason "e-mail changed") unless the same change records consent again. Erasure (GDPR Art. 17)
replaces the name and the address at once, withdraws consent and deactivates the actor for good:
an erased actor refuses every later change (``ActorIsErased``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from quartier_shared.events import (
    ActorDeactivated,
    ActorErased,
    ActorRegistered,
    ActorSnapshot,
    ActorUpdated,
    CompetenceTeamChanged,
    ConsentWithdrawn,
    ContactChanged,
    Event,
    Language,
)

from .commands import RegisterActor
from .consent import (
    EMAIL_CHANGED,
    ERASED,
    PERSON_VIA_LINK,
    ConsentRecord,
    ConsentStatement,
    appended,
    now_to_the_millisecond,
)

# Fields a quarter manager may change after registration (consent changes by a ``ConsentStatement``).
EDITABLE = frozenset({"name", "kind", "districts", "email", "language"})
# What an erased actor's name and e-mail address become: nothing that names or reaches anyone.
ERASED_NAME = "[gelöscht]"
ERASED_EMAIL = ""

SnapshotT = TypeVar("SnapshotT", bound=ActorSnapshot)


class ActorNotFound(Exception):
    pass


class ActorIsErased(Exception):
    """The actor was erased: it can be neither changed nor brought back (the message is its id)."""


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    kind: str
    districts: tuple[str, ...]
    email: str
    language: Language
    consent_to_notifications: bool  # derived: ``given`` of the current consent record
    active: bool = True
    revision: int = 1
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    consent_history: tuple[ConsentRecord, ...] = ()  # oldest first; empty for actors stored before records
    erased_at: datetime | None = None

    @property
    def consent(self) -> ConsentRecord | None:
        """The current consent record; None for an actor stored before consent was recorded."""
        return self.consent_history[-1] if self.consent_history else None

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    @classmethod
    def register(cls, command: RegisterActor) -> tuple[Actor, ActorRegistered]:
        record = ConsentRecord.of(command.consent, command.by)
        actor = cls(
            id=str(uuid.uuid4()),
            name=command.name,
            kind=command.kind,
            districts=_once_each(command.districts),
            email=command.email,
            language=command.language,
            consent_to_notifications=record.given,
            consent_history=(record,),
        )
        return actor, actor._snapshot(ActorRegistered, record)

    def update(
        self, changes: Mapping[str, Any], consent: ConsentStatement | None = None, by: str | None = None
    ) -> tuple[Actor, ActorUpdated | None]:
        """The actor with ``changes`` (fields of ``EDITABLE``) and, when it says something new,
        ``consent`` recorded by ``by``. A new e-mail address withdraws consent unless ``consent``
        is given with it (it is then recorded even if it says what the current record says: it is
        consent for the new address)."""
        self._refuse_if_erased()
        unknown = set(changes) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if "districts" in changes:
            changes = {**changes, "districts": _once_each(changes["districts"])}
        changes = {k: v for k, v in changes.items() if getattr(self, k) != v}
        record = self._consent_after(consent, by, new_address="email" in changes)
        if not changes and record is None:
            return self, None
        history = self.consent_history if record is None else appended(self.consent_history, record)
        updated = replace(
            self,
            **changes,
            consent_history=history,
            consent_to_notifications=self.consent_to_notifications if record is None else record.given,
            revision=self.revision + 1,
            updated_at=datetime.now(UTC),
        )
        return updated, updated._snapshot(ActorUpdated, record)

    def _consent_after(
        self, consent: ConsentStatement | None, by: str | None, *, new_address: bool
    ) -> ConsentRecord | None:
        """The consent record a change adds, if any."""
        if consent is not None and (new_address or not consent.same_as(self.consent)):
            return ConsentRecord.of(consent, by)
        if new_address and consent is None and self.consent_to_notifications:
            return self._withdrawn(by, EMAIL_CHANGED)
        return None

    def _withdrawn(self, by: str | None, reason: str) -> ConsentRecord:
        current = self.consent
        if current is None:  # stored before records: the basis was consent, the wording unknown
            return ConsentRecord(False, "consent", "unknown", by, reason=reason)
        return current.withdrawn(by, reason)

    def unsubscribe(self, at: datetime) -> tuple[Actor, tuple[ConsentWithdrawn, ActorUpdated] | None]:
        """The person withdrew consent through the unsubscribe link at ``at``: a record by
        ``PERSON_VIA_LINK``, and the ``ConsentWithdrawn`` and ``ActorUpdated`` it raises, the
        snapshot last: the actors topic is compacted by actor id, and what compaction keeps of an
        actor must be its full state. Nothing changes when consent is not given now (a second
        click, an erased actor)."""
        if not self.consent_to_notifications or self.erased:
            return self, None
        at = at.astimezone(UTC)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # as MongoDB stores it
        current = self.consent  # None: stored before records, when the basis was consent
        basis, wording = (current.basis, current.wording_version) if current else ("consent", "unknown")
        record = ConsentRecord(False, basis, wording, PERSON_VIA_LINK, at=at)
        updated = replace(
            self,
            consent_history=appended(self.consent_history, record),
            consent_to_notifications=False,
            revision=self.revision + 1,
            updated_at=datetime.now(UTC),
        )
        withdrawn = ConsentWithdrawn(actor_id=self.id, revision=updated.revision, withdrawn_at=at)
        return updated, (withdrawn, updated._snapshot(ActorUpdated))

    def deactivate(self) -> tuple[Actor, ActorDeactivated | None]:
        if not self.active:
            return self, None
        updated = replace(self, active=False, revision=self.revision + 1, updated_at=datetime.now(UTC))
        return updated, ActorDeactivated(actor_id=self.id, revision=updated.revision)

    def erase(self, by: str | None) -> tuple[Actor, ActorErased | None]:
        """Name and e-mail address gone, consent withdrawn, deactivated for good; id, kind,
        districts and revision stay, so counts stay right. Erasing again changes nothing."""
        if self.erased:
            return self, None
        now = now_to_the_millisecond()  # as stored: the erasure record reads back as answered
        history = self.consent_history
        if self.consent_to_notifications or not history:
            history = appended(history, self._withdrawn(by, ERASED))
        erased = replace(
            self,
            name=ERASED_NAME,
            email=ERASED_EMAIL,
            consent_to_notifications=False,
            consent_history=history,
            active=False,
            erased_at=now,
            revision=self.revision + 1,
            updated_at=now,
        )
        return erased, ActorErased(actor_id=self.id, revision=erased.revision)

    def contact(self, after: Event | None = None) -> ContactChanged:
        """The actor's contact data as it is now, for the contact topic (an erased actor's is a
        tombstone instead, see ``handlers.erase_actor``); ``after``: the actor event of the same
        change, whose ``consent_recorded_by_staff`` it repeats (the notice is sent from here)."""
        return ContactChanged(
            actor_id=self.id,
            revision=self.revision,
            name=self.name,
            email=self.email,
            language=self.language,
            consent_to_notifications=self.consent_to_notifications,
            active=self.active,
            districts=list(self.districts),
            consent_recorded_by_staff=isinstance(after, ActorSnapshot) and after.consent_recorded_by_staff,
        )

    def snapshot(self) -> ActorUpdated:
        """The actor's state as it is now, as an ``ActorUpdated`` of its current revision (for a
        republication in the current form of the event)."""
        return self._snapshot(ActorUpdated)

    def _refuse_if_erased(self) -> None:
        if self.erased:
            raise ActorIsErased(self.id)

    def _snapshot(self, event: type[SnapshotT], recorded: ConsentRecord | None = None) -> SnapshotT:
        """The snapshot event; ``recorded``: the consent record this change added, if any (it
        sets ``consent_recorded_by_staff`` when staff gave consent on the person's behalf)."""
        # Every field the event names, by name (it ignores the rest: created_at, updated_at).
        by_staff = recorded is not None and recorded.given_by_staff
        return event.model_validate({**asdict(self), "actor_id": self.id, "consent_recorded_by_staff": by_staff})


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
