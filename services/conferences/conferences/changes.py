"""Changes and cancellation of a conference, and the per-invitation fan-outs that follow them.

``change_conference`` (PATCH) and ``cancel_conference`` (DELETE) store the conference with its
``ConferenceChanged`` / ``ConferenceCancelled`` in one unit of work, its reminders moved (a change
of time) or removed (the cancellation) in the same one, and answer at once. As with the invitation
fan-out, the service consumes its own event to tell each invitation: ``tell_invitations`` writes,
``batch_size`` invitations per transaction, one ``InvitationUpdated`` or ``InvitationCancelled``
each and the conference's sequence on each invitation in the same transaction. A crash between
batches resumes at the invitations not yet told of that sequence: nobody is told twice, and the
event ids are derived from invitation and sequence besides.

Order: a change or cancellation and any transaction issuing invitations write the conference's
document, so they conflict and run one after the other (see ``repository``). An invitation issued
before the change commits is told by its fan-out; one issued after has the new details and sequence
already; after the cancellation nothing is issued. Answers stay as they are. Nothing changes once a
scheduled conference has started (NotNow, HTTP 409); a second cancellation changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from quartier_shared.consumer import Received
from quartier_shared.events import (
    ConferenceCancelled,
    ConferenceChanged,
    EventContext,
    InvitationCancelled,
    InvitationUpdated,
)
from quartier_shared.logging import get_logger

from .commands import CancelConference, ChangeConference
from .domain import Conference, ConferenceNotFound, ConferenceStatus, Invitation
from .unit_of_work import UnitOfWorkFactory, retry_conflicts

log = get_logger(__name__)

Offsets = Sequence[tuple[str, timedelta]]


async def change_conference(
    command: ChangeConference,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    reminders_before: Offsets,
    now: datetime | None = None,
) -> Conference:
    """Store the change with its ConferenceChanged; a change of time moves the reminders. A change
    that changes nothing is answered with the conference as it is, nothing raised."""

    async def attempt() -> Conference:
        at = now or datetime.now(UTC)
        async with uow_factory(context) as uow:
            # Write first: a fan-out batch that overlaps now conflicts and runs again (and sees
            # this), instead of this request losing to every batch of a long fan-out in turn.
            await uow.conferences.touch(command.conference_id)
            conference = await uow.conferences.get(command.conference_id)
            if conference is None:
                raise ConferenceNotFound(command.conference_id)
            changed, event = conference.change(command, at)
            if event is None:
                return conference
            await uow.conferences.save(changed)
            if changed.time_changed(conference.details):
                await uow.reminders.replace_planned(changed.id, changed.reminders(reminders_before, at))
            uow.record(event)
            await uow.commit()
        log.info("conference_changed", conference_id=changed.id, sequence=changed.sequence)
        return changed

    return await retry_conflicts(attempt)


async def cancel_conference(
    command: CancelConference, context: EventContext, *, uow_factory: UnitOfWorkFactory, now: datetime | None = None
) -> Conference:
    """Cancel it with its ConferenceCancelled, and remove its reminders. Cancelling it again
    answers the cancelled conference, nothing raised."""

    async def attempt() -> Conference:
        async with uow_factory(context) as uow:
            # Write first: a fan-out batch that overlaps now conflicts and runs again (and sees
            # this), instead of this request losing to every batch of a long fan-out in turn.
            await uow.conferences.touch(command.conference_id)
            conference = await uow.conferences.get(command.conference_id)
            if conference is None:
                raise ConferenceNotFound(command.conference_id)
            cancelled, event = conference.cancel(command.reason, now or datetime.now(UTC))
            if event is None:
                return conference
            await uow.conferences.save(cancelled)
            await uow.reminders.remove_all(cancelled.id)
            uow.record(event)
            await uow.commit()
        log.info("conference_cancelled", conference_id=cancelled.id, sequence=cancelled.sequence)
        return cancelled

    return await retry_conflicts(attempt)


async def tell_invitations(
    received: Received[ConferenceChanged | ConferenceCancelled], *, uow_factory: UnitOfWorkFactory, batch_size: int
) -> None:
    """Fan-out of a change or the cancellation: each invitation of the conference not yet told of
    the event's sequence gets its InvitationUpdated / InvitationCancelled, ``batch_size`` per
    transaction. A change is not told once a later change or the cancellation is stored (that
    one's own fan-out tells them the newer state); nothing is told after the start."""
    event = received.event
    sequence = event.details.sequence
    told = 0
    while True:
        async with uow_factory(received.context) as uow:
            conference = await uow.conferences.get(event.conference_id)
            if conference is None or _superseded(conference, event):
                break
            batch = await uow.invitations.told_before(conference.id, sequence, batch_size)
            if not batch:
                break
            told_now: list[Invitation] = []
            for invitation in batch:
                raised: InvitationUpdated | InvitationCancelled
                if isinstance(event, ConferenceChanged):
                    told_of, raised = invitation.updated(conference, event.previous)
                else:
                    told_of, raised = invitation.cancelled(conference, event.reason)
                uow.record(raised, event_id=told_of.told_event_id(type(raised).__name__))
                told_now.append(told_of)
            await uow.invitations.mark_told(told_now)
            await uow.commit()
        told += len(batch)
    log.info("invitations_told", conference_id=event.conference_id, sequence=sequence, told=told)


def _superseded(conference: Conference, event: ConferenceChanged | ConferenceCancelled) -> bool:
    """Nothing is told once the conference has started (a fan-out delayed that long); a change is
    not told once a later change or the cancellation is stored."""
    if conference.status is not ConferenceStatus.DRAFT and conference.has_started(datetime.now(UTC)):
        return True
    if isinstance(event, ConferenceCancelled):
        return False
    return conference.status is ConferenceStatus.CANCELLED or conference.sequence != event.details.sequence
