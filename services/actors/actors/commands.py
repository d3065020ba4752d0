"""What a quarter manager asks of the actors service: one frozen dataclass per command.

They say what is wanted, already checked at the edge (api.py); the domain decides what follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quartier_shared.events import Language

from .consent import ConsentStatement


@dataclass(frozen=True)
class RegisterActor:
    name: str
    kind: str
    districts: Sequence[str]
    email: str
    language: Language
    consent: ConsentStatement
    by: str | None = None  # the token subject: who records the consent


@dataclass(frozen=True)
class UpdateActor:
    actor_id: str
    changes: Mapping[str, Any]  # only the fields that change, from ``domain.EDITABLE``
    consent: ConsentStatement | None = None  # None: the request said nothing about consent
    by: str | None = None


@dataclass(frozen=True)
class DeactivateActor:
    actor_id: str


@dataclass(frozen=True)
class EraseActor:
    actor_id: str
    by: str | None  # the data-protection officer's token subject


@dataclass(frozen=True)
class ConfirmErasure:
    """A service reports that it erased its copy of the actor (``ActorErasureConfirmed``)."""

    actor_id: str
    service: str
    erased_at: datetime


@dataclass(frozen=True)
class SetCompetenceTeam:
    district: str
    members: Sequence[str]  # actor ids; the whole team, replacing the one before
