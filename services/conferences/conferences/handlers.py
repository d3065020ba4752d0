"""What the conferences service does when events arrive. Plain functions, wired in app.py.

Every handler is idempotent: the roster only moves forward by actor revision, invitation ids
are derived from (conference, actor) under a unique index, and a delivery outcome only moves an
invitation forward (sent is final). A redelivered event therefore changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from quartier_shared.consumer import Received
from quartier_shared.events import (
    ActorDeactivated,
    ActorSnapshot,
    ConferenceScheduled,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
)
from quartier_shared.logging import get_logger

from .domain import Conference, Invitation, RosterEntry
from .repository import MongoInvitationRepository
from .unit_of_work import ConferencesUnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)


async def update_roster(received: Received[ActorSnapshot | ActorDeactivated], uow_factory: UnitOfWorkFactory) -> None:
    """Keep the roster copy current; invite an actor who became invitable to upcoming conferences."""
    event = received.event
    async with uow_factory(received.context) as uow:
        current = await uow.roster.get(event.actor_id)
        if current is not None and current.revision >= event.revision:
            return  # an older or repeated event
        if isinstance(event, ActorDeactivated):
            if current is None:
                return  # deactivated before we ever saw it: nothing to keep
            entry = RosterEntry(
                event.actor_id, current.districts, False, current.consent_to_notifications, event.revision
            )
        else:
            entry = RosterEntry(
                event.actor_id, tuple(event.districts), event.active, event.consent_to_notifications, event.revision
            )
        await uow.roster.save(entry)
        invited = 0
        if entry.invitable:
            for conference in await uow.conferences.upcoming_in(entry.districts, datetime.now(UTC)):
                if not await uow.invitations.exists(conference.id, entry.actor_id):
                    await uow.invitations.add_many(_issue(uow, conference, [entry.actor_id]))
                    invited += 1
        await uow.commit()
    if invited:
        log.info("late_joiner_invited", actor_id=event.actor_id, conferences=invited)


async def invite_district(
    received: Received[ConferenceScheduled], uow_factory: UnitOfWorkFactory, batch_size: int
) -> None:
    """Fan-out: one invitation for every invitable actor of the district, in batches.

    Re-running it (after a crash or a redelivery) issues only the invitations still missing.
    """
    event = received.event
    async with uow_factory(received.context) as uow:
        conference = await uow.conferences.get(event.conference_id)
        if conference is None or not conference.is_upcoming():
            return
        eligible = await uow.roster.invitable_in(conference.district)
        already = await uow.invitations.invited_actor_ids(conference.id)
    missing = [actor_id for actor_id in eligible if actor_id not in already]
    for start in range(0, len(missing), batch_size):
        async with uow_factory(received.context) as uow:
            await uow.invitations.add_many(_issue(uow, conference, missing[start : start + batch_size]))
            await uow.commit()
    log.info("invitations_issued", conference_id=conference.id, issued=len(missing), already=len(already))


def _issue(uow: ConferencesUnitOfWork, conference: Conference, actor_ids: list[str]) -> list[Invitation]:
    """Record InvitationIssued for each actor (with a derived event id) and return the invitations.

    The caller stores the invitations in the same unit of work.
    """
    invitations = [Invitation.issue(conference.id, actor_id) for actor_id in actor_ids]
    details = conference.details
    for invitation in invitations:
        uow.record(
            InvitationIssued(
                invitation_id=invitation.id,
                conference_id=conference.id,
                actor_id=invitation.actor_id,
                conference=details,
            ),
            event_id=Invitation.issued_event_id(invitation.id),
        )
    return invitations


async def record_outcomes(
    batch: list[Received[InvitationSent | InvitationFailed]], invitations: MongoInvitationRepository
) -> None:
    """Delivery outcomes of a whole batch in one write; a repeated or late outcome changes nothing."""
    outcomes: list[InvitationSent | InvitationFailed] = [item.event for item in batch]
    await invitations.record_outcomes(outcomes)
