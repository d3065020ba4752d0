"""Reminders on a fake unit of work with a fake clock: stored at scheduling (past ones skipped),
moved by a change of time, removed by the cancellation; fired by answer, once, by one of two
workers, resumed after a crash, overdue ones after downtime, none after the start; the nudge and
its window; REMINDERS_BEFORE checked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from conferences import changes, handlers, reminders
from conferences.commands import CancelConference, ChangeConference, RemindConference
from conferences.domain import Conference, Invitation, InvitationAnswer, InvitationStatus, NotNow
from conferences.reminders import Firing, TooSoon, fire_due, parse_offsets
from conferences.settings import Settings
from quartier_shared.events import InvitationReminded
from tests.unit.test_conferences_handlers import (
    CONTEXT,
    OFFSETS,
    FakeConferencesUnitOfWork,
    registered,
    roster,
    schedule_and_fan_out,
    scheduling,
)

NOW = datetime.now(UTC)


def firing(uow: FakeConferencesUnitOfWork, owner: str = "instance-1", batch_size: int = 2) -> Firing:
    return Firing(uow, service="conferences", owner=owner, lease=timedelta(seconds=60), batch_size=batch_size)


def reminded(uow: FakeConferencesUnitOfWork) -> dict[str, list[tuple[str, str]]]:
    """(reminder kind, reminder id) per actor; event ids are unique."""
    found = uow.committed(InvitationReminded)
    assert len({e.event_id for e in found}) == len(found)
    by_actor: dict[str, list[tuple[str, str]]] = {}
    for e in found:
        by_actor.setdefault(e.payload["actor_id"], []).append((e.payload["reminder"], e.payload["reminder_id"]))
    return by_actor


async def invited_with_answers(uow: FakeConferencesUnitOfWork) -> Conference:
    """Six invitees: no answer, accepted, tentative, declined (all sent), and two not sent yet."""
    actors = ["none", "accepted", "tentative", "declined", "pending", "failed"]
    await roster(uow, *(registered(a, "IV") for a in actors))
    conference = await schedule_and_fan_out(uow, "IV")
    for invitation in await uow.invitations.for_conference(conference.id):
        status = {"pending": InvitationStatus.PENDING, "failed": InvitationStatus.FAILED}.get(
            invitation.actor_id, InvitationStatus.SENT
        )
        kind = invitation.actor_id if invitation.actor_id in ("accepted", "tentative", "declined") else None
        given = InvitationAnswer(kind, 1, None, None, False, 0, None, NOW) if kind else None  # type: ignore[arg-type]
        await uow.invitations.save(replace(invitation, status=status, answer=given))
    return conference


async def test_scheduling_stores_the_reminders_to_come_and_firing_follows_the_answers() -> None:
    uow = FakeConferencesUnitOfWork()
    conference = await invited_with_answers(uow)  # 30 days ahead
    planned = await uow.reminders.for_conference(conference.id)
    assert [(r.name, r.due_at) for r in planned] == [
        ("P7D", conference.starts_at - timedelta(days=7)),
        ("P1D", conference.starts_at - timedelta(days=1)),
    ]
    seven_days_before = conference.starts_at - timedelta(days=7)
    assert await fire_due(firing(uow), seven_days_before - timedelta(seconds=1)) == 0
    assert uow.committed(InvitationReminded) == []

    assert await fire_due(firing(uow), seven_days_before) == 1
    assert reminded(uow) == {
        "none": [("please_answer", "P7D")],
        "accepted": [("see_you", "P7D")],
        "tentative": [("see_you", "P7D")],
    }
    # Fired once: asked again, or by another instance, nothing more.
    assert await fire_due(firing(uow), seven_days_before + timedelta(hours=1)) == 0
    assert await fire_due(firing(uow, owner="instance-2"), seven_days_before + timedelta(hours=1)) == 0
    assert len(uow.committed(InvitationReminded)) == 3
    assert [r.name for r in await uow.reminders.for_conference(conference.id)] == ["P1D"]


async def test_a_reminder_past_at_scheduling_is_skipped() -> None:
    uow = FakeConferencesUnitOfWork()
    soon = NOW + timedelta(days=3)
    conference = await handlers.schedule_conference(
        scheduling("IV", starts_at=soon), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    assert [r.name for r in await uow.reminders.for_conference(conference.id)] == ["P1D"]


async def test_a_change_of_time_moves_the_reminders_and_the_cancellation_removes_them() -> None:
    uow = FakeConferencesUnitOfWork()
    conference = await invited_with_answers(uow)
    later = conference.starts_at + timedelta(days=2)
    command = ChangeConference(conference.id, starts_at=later, ends_at=later + timedelta(hours=3))
    await changes.change_conference(command, CONTEXT, uow_factory=uow, reminders_before=OFFSETS)
    moved = await uow.reminders.for_conference(conference.id)
    assert [(r.name, r.due_at) for r in moved] == [
        ("P7D", later - timedelta(days=7)),
        ("P1D", later - timedelta(days=1)),
    ]
    # Nothing at the old time; at the new one, with the new details.
    assert await fire_due(firing(uow), conference.starts_at - timedelta(days=7)) == 0
    assert await fire_due(firing(uow), later - timedelta(days=7)) == 1
    assert {e.payload["conference"]["sequence"] for e in uow.committed(InvitationReminded)} == {1}

    await changes.cancel_conference(CancelConference(conference.id), CONTEXT, uow_factory=uow)
    assert await uow.reminders.for_conference(conference.id) == []
    assert await fire_due(firing(uow), later - timedelta(hours=1)) == 0


async def test_overdue_reminders_fire_after_downtime_but_none_after_the_start() -> None:
    uow = FakeConferencesUnitOfWork()
    conference = await invited_with_answers(uow)
    # Down over both due times, back an hour before the start: each fires once, then.
    back = conference.starts_at - timedelta(hours=1)
    assert await fire_due(firing(uow), back) == 2
    assert sorted(r for rs in reminded(uow).values() for r in rs) == sorted(
        [(kind, name) for name in ("P7D", "P1D") for kind in ("please_answer", "see_you", "see_you")]
    )

    other = FakeConferencesUnitOfWork()
    started = await invited_with_answers(other)
    # Back only after the start: both are dropped, nothing sent.
    assert await fire_due(firing(other), started.starts_at + timedelta(minutes=1)) == 2
    assert other.committed(InvitationReminded) == []
    assert await other.reminders.for_conference(started.id) == []


async def test_a_worker_that_died_mid_firing_is_taken_over_after_its_lease_and_resumes() -> None:
    uow = FakeConferencesUnitOfWork()
    conference = await invited_with_answers(uow)
    due = conference.starts_at - timedelta(days=7)
    commit, commits = uow.commit, 0

    async def dying_on_the_third_commit() -> None:  # claim, first batch, then dead
        nonlocal commits
        commits += 1
        if commits == 3:
            raise RuntimeError("killed")
        await commit()

    uow.commit = dying_on_the_third_commit  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await fire_due(firing(uow, batch_size=2), due)
    uow.commit = commit  # type: ignore[method-assign]
    first = len(uow.committed(InvitationReminded))
    assert 0 < first < 3
    # Its lease holds: another instance leaves it alone ...
    assert await fire_due(firing(uow, owner="instance-2"), due + timedelta(seconds=30)) == 0
    # ... until it runs out; then it resumes after the last invitation reached, nobody twice.
    assert await fire_due(firing(uow, owner="instance-2"), due + timedelta(seconds=61)) == 1
    assert set(reminded(uow)) == {"none", "accepted", "tentative"}


async def test_a_nudge_reminds_only_those_without_an_answer_once_an_hour() -> None:
    uow = FakeConferencesUnitOfWork()
    conference = await invited_with_answers(uow)
    nudge = await reminders.nudge(RemindConference(conference.id), CONTEXT, uow_factory=uow, now=NOW)
    assert nudge.name == f"nudge-{NOW:%Y%m%dT%H%M%SZ}" and nudge.due_at == NOW
    with pytest.raises(TooSoon) as soon:
        await reminders.nudge(
            RemindConference(conference.id), CONTEXT, uow_factory=uow, now=NOW + timedelta(minutes=20)
        )
    assert soon.value.retry_after == timedelta(minutes=40)
    assert await fire_due(firing(uow), NOW) == 1
    assert reminded(uow) == {"none": [("please_answer", nudge.name)]}
    # An hour later, another; the planned reminders are untouched by nudges.
    await reminders.nudge(RemindConference(conference.id), CONTEXT, uow_factory=uow, now=NOW + timedelta(hours=1))
    assert [r.name for r in await uow.reminders.for_conference(conference.id)][-2:] == ["P7D", "P1D"]


async def test_no_nudge_for_a_draft_a_cancelled_or_a_started_conference() -> None:
    uow = FakeConferencesUnitOfWork()
    draft = await handlers.schedule_conference(
        replace(scheduling("IV"), draft=True), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    with pytest.raises(NotNow, match="draft"):
        await reminders.nudge(RemindConference(draft.id), CONTEXT, uow_factory=uow)
    conference = await schedule_and_fan_out(uow, "IV")
    with pytest.raises(NotNow, match="started"):
        await reminders.nudge(
            RemindConference(conference.id), CONTEXT, uow_factory=uow, now=conference.starts_at + timedelta(minutes=1)
        )
    await changes.cancel_conference(CancelConference(conference.id), CONTEXT, uow_factory=uow)
    with pytest.raises(NotNow, match="cancelled"):
        await reminders.nudge(RemindConference(conference.id), CONTEXT, uow_factory=uow)


def test_reminders_before_is_checked() -> None:
    assert parse_offsets("P7D, p1d,PT2H,P2W") == (
        ("P7D", timedelta(days=7)),
        ("P1D", timedelta(days=1)),
        ("PT2H", timedelta(hours=2)),
        ("P2W", timedelta(weeks=2)),
    )
    assert parse_offsets("") == ()
    for bad in (
        "7 days",
        "P",
        "PT",
        "P1M",
        "P1Y",
        "PT30S",
        "P400D",
        "P1D,P1D",
        "P7D,P1W",
        ",".join(["PT1H"] * 11),
        "-P1D",
    ):
        with pytest.raises(ValueError):
            parse_offsets(bad)
    assert Settings().reminder_offsets == (("P7D", timedelta(days=7)), ("P1D", timedelta(days=1)))
    with pytest.raises(ValueError, match="reminders_before"):
        Settings(reminders_before="P1Y")
    with pytest.raises(ValueError, match="reminders_poll_seconds"):
        Settings(reminders_poll_seconds=0)


async def test_a_change_of_time_while_a_reminder_fires_keeps_the_reminder_planned_anew() -> None:
    uow = FakeConferencesUnitOfWork()
    conference = await invited_with_answers(uow)
    due = conference.starts_at - timedelta(days=7)
    later = conference.starts_at + timedelta(days=14)
    sent_after, moved = uow.invitations.sent_after, False

    async def moved_after_the_last_batch(conference_id: str, after: str | None, limit: int) -> list[Invitation]:
        nonlocal moved
        found = await sent_after(conference_id, after, limit)
        if not found and not moved:  # the coordinator moves the conference just before it is done
            moved = True
            command = ChangeConference(conference.id, starts_at=later, ends_at=later + timedelta(hours=3))
            await changes.change_conference(command, CONTEXT, uow_factory=uow, reminders_before=OFFSETS, now=due)
        return found

    uow.invitations.sent_after = moved_after_the_last_batch  # type: ignore[method-assign]
    await fire_due(firing(uow), due)
    assert moved and len(uow.committed(InvitationReminded)) == 3
    planned = {r.name: r.due_at for r in await uow.reminders.for_conference(conference.id)}
    assert planned == {"P7D": later - timedelta(days=7), "P1D": later - timedelta(days=1)}
