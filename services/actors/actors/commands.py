"""What a quarter manager asks of the actors service: one frozen dataclass per command.

They say what is wanted, already checked at the edge (api.py); the domain decides what follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quartier_shared.events import Language


@dataclass(frozen=True)
class RegisterActor:
    name: str
    kind: str
    districts: Sequence[str]
    email: str
    language: Language
    consent_to_notifications: bool


@dataclass(frozen=True)
class UpdateActor:
    actor_id: str
    changes: Mapping[str, Any]  # only the fields that change, from ``domain.EDITABLE``


@dataclass(frozen=True)
class DeactivateActor:
    actor_id: str


@dataclass(frozen=True)
class SetCompetenceTeam:
    district: str
    members: Sequence[str]  # actor ids; the whole team, replacing the one before
