"""Reminders: due times stored in MongoDB, fired once across instances, and the coordinator's nudge.

A scheduled (or published) conference has one ``reminders`` document per offset of
``REMINDERS_BEFORE`` whose time is still to come (handlers, changes: written in the same unit of
work as the conference; moved by a change of time, removed by the cancellation). ``fire_due(now)``
fires what is due at ``now``, the clock passed in so tests need no waiting:

- it claims one due reminder at a time with a lease (``owner``, ``lease_until``) in a transaction,
  so of several instances exactly one fires it; a lease that ran out (its holder died) is claimed
  again by whoever looks next;
- a reminder of a conference that has started, was cancelled or is gone is dropped unfired; one
  that fell due while the service was down fires when it is back (before the start);
- firing writes ``batch_size`` invitations per transaction: one ``InvitationReminded`` each for the
  invitations that were sent (``Reminder.event_for`` decides by the answer), and the last
  invitation reached on the reminder in the same transaction, so a worker that dies resumes after
  it; the event ids are derived from reminder, due time and invitation besides. The reminder is
  deleted once every invitation was reached.

``nudge`` (``POST /conferences/{id}/reminders``) stores a reminder due now that reminds only those
without an answer, at most one per conference within ``NUDGE_WINDOW``: the time of the last nudge is
kept in MongoDB in the same transaction (``nudges``), so it holds across instances.

``run_reminders`` is the loop an instance runs beside its outbox relay.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from quartier_shared.events import EventContext
from quartier_shared.logging import get_logger
from quartier_shared.retry import Retry
from quartier_shared.wakeup import Wakeup

from .commands import RemindConference
from .domain import Conference, ConferenceNotFound, ConferenceStatus, NotNow, Reminder
from .unit_of_work import UnitOfWorkFactory, retry_conflicts

log = get_logger(__name__)

NUDGE_WINDOW = timedelta(hours=1)
# ISO 8601 durations in weeks, days, hours, minutes and seconds (years and months have no fixed length).
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
SHORTEST, LONGEST, MOST = timedelta(minutes=1), timedelta(days=366), 10


def parse_offsets(text: str) -> tuple[tuple[str, timedelta], ...]:
    """``REMINDERS_BEFORE``: comma-separated ISO 8601 durations (``P7D,P1D``, ``PT2H``), each
    between PT1M and P366D, at most 10, no two at the same time; empty for no reminders. ValueError says what
    is wrong."""
    names = [part.strip().upper() for part in text.split(",") if part.strip()]
    if len(names) > MOST:
        raise ValueError(f"at most {MOST} reminders")
    offsets = []
    for name in names:
        match = _DURATION.match(name)
        if match is None or name in ("P", "PT") or name.endswith("T"):
            raise ValueError(f"{name[:20]!r} is not an ISO 8601 duration such as P7D or PT2H")
        weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        offset = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
        if not SHORTEST <= offset <= LONGEST:
            raise ValueError(f"{name} is not between PT1M and P366D")
        offsets.append((name, offset))
    if len({offset for _, offset in offsets}) != len(offsets):
        raise ValueError("two reminders at the same time")
    return tuple(offsets)


@dataclass(frozen=True)
class Firing:
    """What a worker needs to fire reminders: who it is (the lease's owner) and how long a lease
    lasts before another instance may take the reminder over."""

    uow_factory: UnitOfWorkFactory
    service: str
    owner: str
    lease: timedelta = timedelta(seconds=60)
    batch_size: int = 500


async def fire_due(firing: Firing, now: datetime) -> int:
    """Fire every reminder due at ``now``; returns how many reminders were fired or dropped."""
    handled = 0
    while (reminder := await _claim(firing, now)) is not None:
        await _fire(firing, reminder, now)
        handled += 1
    return handled


async def _claim(firing: Firing, now: datetime) -> Reminder | None:
    async def attempt() -> Reminder | None:
        async with firing.uow_factory(_context(firing, None)) as uow:
            claimed = await uow.reminders.claim_due(now, firing.owner, now + firing.lease)
            await uow.commit()
        return claimed

    return await retry_conflicts(attempt)


async def _fire(firing: Firing, reminder: Reminder, now: datetime) -> None:
    context = _context(firing, reminder)
    reminded = 0
    while True:
        async with firing.uow_factory(context) as uow:
            conference = await uow.conferences.get(reminder.conference_id)
            if conference is None or not conference.is_upcoming(now):
                await uow.reminders.remove(reminder)
                await uow.commit()
                log.info("reminder_dropped", conference_id=reminder.conference_id, reminder=reminder.name)
                return
            batch = await uow.invitations.sent_after(conference.id, reminder.after, firing.batch_size)
            if not batch:
                await uow.reminders.remove(reminder)
                await uow.commit()
                break
            for invitation in batch:
                found = reminder.event_for(invitation, conference)
                if found is not None:
                    uow.record(found[0], event_id=found[1])
                    reminded += 1
            if not await uow.reminders.advance(reminder, batch[-1].id, now + firing.lease):
                log.warning("reminder_lease_lost", conference_id=conference.id, reminder=reminder.name)
                return  # another instance holds it now: this batch is not committed
            await uow.commit()
        reminder = Reminder(**{**vars(reminder), "after": batch[-1].id})
    log.info("reminder_fired", conference_id=reminder.conference_id, reminder=reminder.name, reminded=reminded)


def _context(firing: Firing, reminder: Reminder | None) -> EventContext:
    # No request and no person behind a due reminder: a correlation id of its own per reminder.
    return EventContext(firing.service, f"reminder-{uuid.uuid4().hex[:16]}" if reminder else "reminders")


async def nudge(
    command: RemindConference, context: EventContext, *, uow_factory: UnitOfWorkFactory, now: datetime | None = None
) -> Reminder:
    """A reminder due now to those who have not answered. NotNow for a draft, a cancelled or a
    started conference; ``TooSoon`` within ``NUDGE_WINDOW`` of the last nudge."""

    async def attempt() -> Reminder:
        at = now or datetime.now(UTC)
        async with uow_factory(context) as uow:
            conference = await uow.conferences.get(command.conference_id)
            if conference is None:
                raise ConferenceNotFound(command.conference_id)
            _check_nudgeable(conference, at)
            last = await uow.reminders.last_nudge(conference.id)
            if last is not None and at < last + NUDGE_WINDOW:
                raise TooSoon(last + NUDGE_WINDOW - at)
            await uow.reminders.set_last_nudge(conference.id, at)
            reminder = Reminder.nudge(conference.id, at)
            await uow.reminders.add(reminder)
            await uow.commit()
        log.info("conference_nudged", conference_id=conference.id, reminder=reminder.name)
        return reminder

    return await retry_conflicts(attempt)


def _check_nudgeable(conference: Conference, now: datetime) -> None:
    if conference.status is ConferenceStatus.DRAFT:
        raise NotNow("the conference is a draft: publish it first")
    if conference.status is ConferenceStatus.CANCELLED:
        raise NotNow("the conference has been cancelled")
    if conference.has_started(now):
        raise NotNow("the conference has already started")


class TooSoon(Exception):
    """A nudge within the window of the last one (HTTP 429); ``retry_after`` says how long to wait."""

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__(f"retry in {retry_after}")
        self.retry_after = retry_after


class ReminderWorker:
    """The loop of one instance: ``fire_due`` with the clock, every ``poll_seconds`` or when woken
    (a nudge was stored). Errors (MongoDB away) are logged and retried; nothing is lost, as the
    reminders stay stored until fired."""

    def __init__(
        self,
        fire: Callable[[datetime], Awaitable[int]],
        poll_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.fire = fire
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._wakeup = Wakeup()

    def wake(self) -> None:
        self._wakeup.wake()

    async def run(self) -> None:
        retry = Retry(base=0.5, cap=30.0)
        while True:
            await retry.run(lambda: self.fire(self.clock()), event="reminders_retrying")
            await self._wakeup.wait(self.poll_seconds)
