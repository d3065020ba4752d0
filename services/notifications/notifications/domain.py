"""Contacts (this service's copy of actor contact data) and deliveries (one mail each)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from quartier_shared.events import ConferenceDetails

ID_NAMESPACE = uuid.UUID("a7d4f3c2-1b0e-4d6a-8f3b-9e2c5d7a1f40")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    WAITING_FOR_CONTACT = "waiting_for_contact"  # the actor's contact data has not arrived yet
    SENDING = "sending"  # leased to one instance; a lease that ran out may be taken over
    SENT = "sent"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.SENT, DeliveryStatus.FAILED)


@dataclass(frozen=True)
class Contact:
    actor_id: str
    name: str
    email: str
    language: Literal["de", "en"]
    consent_to_notifications: bool
    active: bool
    revision: int

    @property
    def reachable(self) -> bool:
        """Every mail respects opt-out, whatever the sender believed when it issued it."""
        return self.active and self.consent_to_notifications


@dataclass(frozen=True)
class Delivery:
    id: str
    kind: str
    invitation_id: str
    conference_id: str
    actor_id: str
    conference: ConferenceDetails
    status: DeliveryStatus
    message_id: str | None = None
    reason: str | None = None
    lease_until: datetime | None = None

    @staticmethod
    def id_for(invitation_id: str, kind: str) -> str:
        return f"{kind}:{invitation_id}"

    def outcome_event_id(self, outcome: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"{outcome}:{self.id}"))
