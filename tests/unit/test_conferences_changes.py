"""Changes and cancellation of a conference: the domain, and the service layer on a fake unit of
work (the events raised, the fan-out to every invitation once, also after a crash between its
batches, nothing issued after the cancellation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conferences import changes, handlers
from conferences.commands import CancelConference, ChangeConference, PublishConference
from conferences.domain import (
    Conference,
    ConferenceStatus,
    InvalidChange,
    Invitation,
    InvitationAnswer,
    InvitationStatus,
    NotNow,
)
from quartier_shared.events import (
    ConferenceCancelled,
    ConferenceChanged,
    Event,
    InvitationCancelled,
    InvitationIssued,
    InvitationUpdated,
    Venue,
)
from tests.unit.fakes import delivered
from tests.unit.test_conferences_handlers import (
    CONTEXT,
    OFFSETS,
    SERVICE,
    FakeConferencesUnitOfWork,
    fan_out,
    registered,
    roster,
    schedule_and_fan_out,
    scheduling,
)

NOW = datetime.now(UTC)


def answer(kind: str) -> InvitationAnswer:
    return InvitationAnswer(kind, 1, None, None, False, 0, None, NOW)  # type: ignore[arg-type]


async def five_invited(uow: FakeConferencesUnitOfWork) -> tuple[Conference, list[Invitation]]:
    await roster(uow, *(registered(f"a{i}", "IV") for i in range(5)))
    conference = await schedule_and_fan_out(uow, "IV")
    return conference, await uow.invitations.for_conference(conference.id)


async def change(uow: FakeConferencesUnitOfWork, conference_id: str, **fields: object) -> Conference:
    command = ChangeConference(conference_id, **fields)  # type: ignore[arg-type]
    return await changes.change_conference(command, CONTEXT, uow_factory=uow, reminders_before=OFFSETS)


async def tell(
    uow: FakeConferencesUnitOfWork, kind: type[ConferenceChanged | ConferenceCancelled], n: int = -1
) -> None:
    """Deliver the ``n``-th committed event of ``kind`` to the fan-out."""
    event = uow.committed(kind)[n]
    await changes.tell_invitations(delivered(event, kind, SERVICE), uow_factory=uow, batch_size=2)


def told(uow: FakeConferencesUnitOfWork, kind: type[Event]) -> dict[str, dict[str, Any]]:
    """The payloads of the committed events of ``kind``, by invitation id (each once)."""
    found = uow.committed(kind)
    assert len({e.event_id for e in found}) == len(found)
    by_invitation = {e.payload["invitation_id"]: e.payload for e in found}
    assert len(by_invitation) == len(found)
    return by_invitation


async def test_a_change_raises_its_event_and_tells_every_invitation_once_answers_staying() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, invitations = await five_invited(uow)
    accepted, declined = invitations[0], invitations[1]
    for invitation, kind in ((accepted, "accepted"), (declined, "declined")):
        await uow.invitations.save(replace(invitation, answer=answer(kind), status=InvitationStatus.SENT))
    later = conference.starts_at + timedelta(hours=1)
    changed = await change(uow, conference.id, starts_at=later, ends_at=later + timedelta(hours=2), title="Neu")
    assert (changed.sequence, changed.title, changed.starts_at) == (1, "Neu", later)
    [event] = uow.committed(ConferenceChanged)
    payload = ConferenceChanged.model_validate(event.payload)
    assert payload.details == changed.details and payload.previous == conference.details
    assert payload.details.sequence == 1 and payload.previous.sequence == 0

    await tell(uow, ConferenceChanged)
    updates = told(uow, InvitationUpdated)
    assert set(updates) == {i.id for i in invitations}
    assert {i for i, p in updates.items() if p["confirm"]} == {accepted.id}  # the time changed
    assert all(
        p["conference"]["title"] == "Neu" and p["previous"]["title"] == conference.title for p in updates.values()
    )
    stored = {i.id: i for i in await uow.invitations.for_conference(conference.id)}
    assert stored[accepted.id].answer == answer("accepted") and stored[declined.id].answer == answer("declined")
    assert {i.sequence for i in stored.values()} == {1}

    # Delivered again: nobody is told twice.
    await tell(uow, ConferenceChanged)
    assert len(uow.committed(InvitationUpdated)) == 5

    # A change of the venue only asks nobody to confirm.
    await change(uow, conference.id, venue=Venue(name="Rathaus", address="Porscheplatz 1"))
    await tell(uow, ConferenceChanged)
    second = [e for e in uow.committed(InvitationUpdated) if e.payload["conference"]["sequence"] == 2]
    assert len(second) == 5 and not any(e.payload["confirm"] for e in second)


async def test_a_fan_out_that_crashed_between_batches_resumes_without_duplicates() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, invitations = await five_invited(uow)
    await change(uow, conference.id, title="Neu")
    commit, commits = uow.commit, 0

    async def crashing_second_commit() -> None:
        nonlocal commits
        commits += 1
        if commits == 2:
            raise RuntimeError("killed")
        await commit()

    uow.commit = crashing_second_commit  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await tell(uow, ConferenceChanged)
    assert len(uow.committed(InvitationUpdated)) == 2  # the first batch only
    uow.commit = commit  # type: ignore[method-assign]
    await tell(uow, ConferenceChanged)
    assert set(told(uow, InvitationUpdated)) == {i.id for i in invitations}


async def test_a_change_that_changes_nothing_raises_nothing_and_wrong_times_name_the_field() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, _ = await five_invited(uow)
    same = await change(uow, conference.id, title=conference.title, agenda=list(conference.agenda))
    assert same == conference and uow.committed(ConferenceChanged) == []
    with pytest.raises(InvalidChange) as wrong:
        await change(uow, conference.id, ends_at=conference.starts_at - timedelta(hours=1))
    assert wrong.value.field == "ends_at"
    with pytest.raises(InvalidChange) as wrong:
        await change(uow, conference.id, starts_at=conference.ends_at + timedelta(hours=1))
    assert wrong.value.field == "starts_at"
    with pytest.raises(InvalidChange, match="24 hours"):
        await change(uow, conference.id, ends_at=conference.starts_at + timedelta(hours=25))
    assert uow.committed(ConferenceChanged) == []


async def test_a_draft_may_be_changed_even_off_a_passed_date_and_tells_nobody() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "IV"))
    draft = await handlers.schedule_conference(
        replace(scheduling("IV"), draft=True), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    await uow.conferences.save(replace(draft, starts_at=NOW - timedelta(hours=1), ends_at=NOW))
    start = NOW + timedelta(days=3)
    changed = await change(uow, draft.id, starts_at=start, ends_at=start + timedelta(hours=1))
    assert changed.status is ConferenceStatus.DRAFT and changed.sequence == 1
    await tell(uow, ConferenceChanged)
    assert uow.committed(InvitationUpdated) == []
    assert await uow.reminders.for_conference(draft.id) == []  # a draft has none until published


async def test_nothing_changes_once_started_or_cancelled() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, _ = await five_invited(uow)
    await uow.conferences.save(replace(conference, starts_at=NOW - timedelta(minutes=1)))
    with pytest.raises(NotNow, match="started"):
        await change(uow, conference.id, title="Neu")
    with pytest.raises(NotNow, match="started"):
        await changes.cancel_conference(CancelConference(conference.id), CONTEXT, uow_factory=uow)
    assert uow.committed(ConferenceChanged) == uow.committed(ConferenceCancelled) == []

    # A cancellation whose fan-out is only reached after the start tells nobody any more.
    late = FakeConferencesUnitOfWork()
    upcoming, _ = await five_invited(late)
    await changes.cancel_conference(CancelConference(upcoming.id), CONTEXT, uow_factory=late)
    cancelled = await late.conferences.get(upcoming.id)
    assert cancelled is not None
    await late.conferences.save(replace(cancelled, starts_at=NOW - timedelta(minutes=1)))
    await tell(late, ConferenceCancelled)
    assert late.committed(InvitationCancelled) == []


async def test_cancelling_tells_every_invitation_removes_reminders_and_invites_nobody_after() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, invitations = await five_invited(uow)
    assert len(await uow.reminders.for_conference(conference.id)) == 2
    command = CancelConference(conference.id, reason="Raum nicht verfügbar")
    cancelled = await changes.cancel_conference(command, CONTEXT, uow_factory=uow)
    assert (cancelled.status, cancelled.sequence) == (ConferenceStatus.CANCELLED, 1)
    [event] = uow.committed(ConferenceCancelled)
    assert event.payload["reason"] == "Raum nicht verfügbar" and event.payload["details"]["sequence"] == 1
    assert await uow.reminders.for_conference(conference.id) == []

    # Cancelling again is harmless: the conference as it is, nothing raised.
    assert await changes.cancel_conference(command, CONTEXT, uow_factory=uow) == cancelled
    assert len(uow.committed(ConferenceCancelled)) == 1

    await tell(uow, ConferenceCancelled)
    await tell(uow, ConferenceCancelled)
    cancellations = told(uow, InvitationCancelled)
    assert set(cancellations) == {i.id for i in invitations}
    assert {p["conference"]["sequence"] for p in cancellations.values()} == {1}

    # After it: no change, no publish, no late joiner, no fan-out batch issues anything.
    with pytest.raises(NotNow, match="cancelled"):
        await change(uow, conference.id, title="Neu")
    with pytest.raises(NotNow, match="cancelled"):
        await handlers.publish_conference(
            PublishConference(conference.id), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
        )
    issued = len(uow.committed(InvitationIssued))
    await roster(uow, registered("late", "IV"))
    await fan_out(uow, conference)
    assert len(uow.committed(InvitationIssued)) == issued


async def test_a_fan_out_batch_reads_the_conference_again_and_stops_at_a_cancellation() -> None:
    """The batch's own transaction reads the conference: cancelled after the fan-out began, the
    next batch issues nothing (on MongoDB, the touch makes a batch overlapping the cancellation
    conflict and run again, and then it reads this)."""
    uow = FakeConferencesUnitOfWork()
    await roster(uow, *(registered(f"a{i}", "IV") for i in range(5)))
    conference = await handlers.schedule_conference(
        scheduling("IV"), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    add_many = uow.invitations.add_many
    batches = 0

    async def cancel_after_the_first_batch(invitations: Sequence[Invitation]) -> None:
        nonlocal batches
        batches += 1
        await add_many(invitations)
        if batches == 1:
            stored = await uow.conferences.get(conference.id)
            assert stored is not None
            await uow.conferences.save(replace(stored, status=ConferenceStatus.CANCELLED, sequence=1))

    uow.invitations.add_many = cancel_after_the_first_batch  # type: ignore[method-assign]
    await fan_out(uow, conference, batch_size=2)
    assert batches == 1 and len(uow.committed(InvitationIssued)) == 2
    assert uow.conferences.touched == [conference.id]  # type: ignore[attr-defined]


async def test_a_change_superseded_by_the_cancellation_is_not_told() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, _ = await five_invited(uow)
    await change(uow, conference.id, title="Neu")
    await changes.cancel_conference(CancelConference(conference.id), CONTEXT, uow_factory=uow)
    await tell(uow, ConferenceChanged)
    await tell(uow, ConferenceCancelled)
    assert uow.committed(InvitationUpdated) == []
    assert len(told(uow, InvitationCancelled)) == 5


async def test_an_invitation_issued_after_a_change_carries_it_and_is_not_told_again() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, _ = await five_invited(uow)
    await change(uow, conference.id, title="Neu")
    await roster(uow, registered("late", "IV"))
    [late] = [e for e in uow.committed(InvitationIssued) if e.payload["actor_id"] == "late"]
    assert (late.payload["conference"]["title"], late.payload["conference"]["sequence"]) == ("Neu", 1)
    await tell(uow, ConferenceChanged)
    assert "late" not in {p["actor_id"] for p in told(uow, InvitationUpdated).values()}
    assert len(uow.committed(InvitationUpdated)) == 5
