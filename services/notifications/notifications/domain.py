"""Contacts (this service's copy of actor contact data), conferences (its copy of what their
invitations will say, for previews and test mails), deliveries (one mail each) and the events a
delivery raises when it ends: InvitationSent or InvitationFailed.

A contact only moves forward by actor revision. A delivery is sent under a lease: a claim holds
it until ``Lease.until``; a delivery whose lease ran out may be claimed again. A final delivery
(sent or failed) is never sent again, and the ids of the events it raised are derived from it,
so recording an outcome twice yields the same event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from quartier_shared.actor_copies import copy_after
from quartier_shared.events import (
    ActorDeactivated,
    ActorSnapshot,
    ConferenceDetails,
    ConferenceDrafted,
    ConferenceScheduled,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
    Language,
)

ID_NAMESPACE = uuid.UUID("a7d4f3c2-1b0e-4d6a-8f3b-9e2c5d7a1f40")
INVITATION = "invitation"  # the kind of delivery; the only one so far


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # to be claimed (a claim gave it back unsent)
    WAITING_FOR_CONTACT = "waiting_for_contact"  # the actor's contact data has not arrived yet
    SENDING = "sending"  # leased to one claim; a lease that ran out may be taken over
    SENT = "sent"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.SENT, DeliveryStatus.FAILED)


@dataclass(frozen=True)
class Contact:
    id: str  # the actor's id: a contact is an actor's contact data
    name: str
    email: str
    language: Language
    consent_to_notifications: bool
    active: bool
    revision: int

    @property
    def reachable(self) -> bool:
        """Every mail respects opt-out, whatever the sender believed when it issued it."""
        return self.active and self.consent_to_notifications

    @classmethod
    def after(cls, event: ActorSnapshot | ActorDeactivated, current: Contact | None) -> Contact | None:
        """The actor's contact once ``event`` is applied; None when it changes nothing."""
        return copy_after(cls, event, current)


@dataclass(frozen=True)
class KnownConference:
    """This service's copy of a conference, from ConferenceDrafted and ConferenceScheduled: the
    details its invitations carry, so its mail can be previewed before anyone is invited."""

    id: str  # the conference's id
    details: ConferenceDetails

    @classmethod
    def after(
        cls, event: ConferenceDrafted | ConferenceScheduled, current: KnownConference | None
    ) -> KnownConference | None:
        """The copy once ``event`` is applied; None when it changes nothing. A later sequence wins;
        the same sequence says the same (publishing a draft keeps its details), so a repeated or
        older event changes nothing."""
        if current is not None and event.details.sequence <= current.details.sequence:
            return None
        return cls(id=event.conference_id, details=event.details)


@dataclass(frozen=True)
class Lease:
    """One claim's hold on the deliveries it sends: its token, and until when it holds them."""

    token: str
    until: datetime

    @classmethod
    def starting(cls, now: datetime, seconds: float) -> Lease:
        return cls(token=str(uuid.uuid4()), until=now + timedelta(seconds=seconds))


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

    @classmethod
    def for_invitation(cls, invitation: InvitationIssued, message_id: str) -> Delivery:
        """The delivery of an invitation's mail; its id is derived, so a redelivery finds it."""
        return cls(
            id=cls.id_for(invitation.invitation_id, INVITATION),
            kind=INVITATION,
            invitation_id=invitation.invitation_id,
            conference_id=invitation.conference_id,
            actor_id=invitation.actor_id,
            conference=invitation.conference,
            status=DeliveryStatus.PENDING,
            message_id=message_id,
        )

    def claimable(self, now: datetime) -> bool:
        """Not final, and held by no claim whose lease still runs."""
        if self.status is DeliveryStatus.SENDING:
            return self.lease_until is not None and self.lease_until < now
        return not self.status.final

    def outcome(self, status: DeliveryStatus, reason: str | None, now: datetime) -> InvitationSent | InvitationFailed:
        """The event that says how sending ended: ``SENT``, or ``FAILED`` with the reason."""
        if status is DeliveryStatus.SENT:
            assert self.message_id is not None
            return InvitationSent(
                invitation_id=self.invitation_id,
                conference_id=self.conference_id,
                actor_id=self.actor_id,
                message_id=self.message_id,
                sent_at=now,
            )
        return InvitationFailed(
            invitation_id=self.invitation_id,
            conference_id=self.conference_id,
            actor_id=self.actor_id,
            reason=reason or "unknown",
            failed_at=now,
        )

    def outcome_event_id(self, status: DeliveryStatus) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"{status.value}:{self.id}"))


@dataclass(frozen=True)
class Outcome:
    """How sending one delivery ended: ``SENT``, or ``FAILED`` with the reason."""

    delivery: Delivery
    status: DeliveryStatus
    reason: str | None = None
