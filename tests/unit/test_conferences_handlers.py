"""Conferences: the service layer, on a fake unit of work (no I/O). Scheduling, the fan-out, late
joiners, the roster's revisions and delivery outcomes, each also when an event comes again."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from conferences import handlers
from conferences.commands import ScheduleConference
from conferences.domain import Conference, ConferenceNotFound, Invitation, InvitationStatus, RosterEntry
from conferences.repository import ConferenceRepository, InvitationRepository, RosterRepository
from quartier_shared.events import (
    ActorDeactivated,
    ActorRegistered,
    ActorUpdated,
    ConferenceScheduled,
    EventContext,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
    Venue,
)
from tests.helpers import actor_registered
from tests.unit.fakes import FakeUnitOfWork, InMemory, delivered, received

SERVICE = "conferences"
CONTEXT = EventContext(SERVICE, "request-1")
SOON = datetime.now(UTC) + timedelta(days=30)


class FakeConferenceRepository(InMemory[Conference]):
    async def add(self, conference: Conference) -> None:
        self.insert(conference.id, conference)

    async def get(self, conference_id: str) -> Conference | None:
        return self.rows.get(conference_id)

    async def find(self, district: str | None) -> list[Conference]:
        return sorted((c for c in self.rows.values() if district in (None, c.district)), key=lambda c: c.starts_at)

    async def upcoming_in(self, districts: Iterable[str], now: datetime) -> list[Conference]:
        wanted = set(districts)
        upcoming = [c for c in self.rows.values() if c.district in wanted and c.is_upcoming(now)]
        return sorted(upcoming, key=lambda c: c.starts_at)


class FakeInvitationRepository(InMemory[Invitation]):
    async def add_many(self, invitations: Sequence[Invitation]) -> None:
        for invitation in invitations:
            self.insert(invitation.id, invitation)

    async def exists(self, conference_id: str, actor_id: str) -> bool:
        return Invitation.id_for(conference_id, actor_id) in self.rows

    async def get(self, invitation_id: str) -> Invitation | None:
        return self.rows.get(invitation_id)

    async def save_answer(self, invitation: Invitation) -> None:
        stored = self.rows[invitation.id]
        self.rows[invitation.id] = replace(stored, answer=invitation.answer)

    async def invited_actor_ids(self, conference_id: str) -> set[str]:
        return {i.actor_id for i in self.rows.values() if i.conference_id == conference_id}

    async def for_conference(self, conference_id: str) -> list[Invitation]:
        return sorted((i for i in self.rows.values() if i.conference_id == conference_id), key=lambda i: i.id)

    async def record_outcomes(self, outcomes: Sequence[InvitationSent | InvitationFailed]) -> None:
        now = datetime.now(UTC)
        for outcome in sorted(outcomes, key=lambda o: isinstance(o, InvitationSent)):  # failures first
            invitation = self.rows.get(outcome.invitation_id)
            if invitation is not None:
                self.rows[invitation.id] = invitation.with_outcome(outcome, now)


class FakeRosterRepository(InMemory[RosterEntry]):
    async def get(self, actor_id: str) -> RosterEntry | None:
        return self.rows.get(actor_id)

    async def save(self, entry: RosterEntry) -> None:
        self.rows[entry.id] = entry

    async def invitable_in(self, district: str) -> list[str]:
        return [e.id for e in self.rows.values() if e.invitable and district in e.districts]


class FakeConferencesUnitOfWork(FakeUnitOfWork):
    conferences: ConferenceRepository
    invitations: InvitationRepository
    roster: RosterRepository

    def __init__(self) -> None:
        conferences, invitations, roster = (
            FakeConferenceRepository(),
            FakeInvitationRepository(),
            FakeRosterRepository(),
        )
        super().__init__(conferences, invitations, roster)
        self.conferences, self.invitations, self.roster = conferences, invitations, roster


def registered(actor_id: str, *districts: str, consent: bool = True) -> ActorRegistered:
    return actor_registered(*districts, consent=consent, actor_id=actor_id)


def updated(actor: ActorRegistered, **changes: object) -> ActorUpdated:
    return ActorUpdated.model_validate({**actor.model_dump(), "revision": actor.revision + 1, **changes})


def scheduling(district: str, starts_at: datetime = SOON) -> ScheduleConference:
    venue = Venue(name="Kulturzentrum", address="Musterstraße 1")
    return ScheduleConference(district, "Integrationskonferenz", starts_at, starts_at + timedelta(hours=3), venue, [])


async def roster(uow: FakeConferencesUnitOfWork, *events: ActorRegistered | ActorUpdated | ActorDeactivated) -> None:
    for event in events:
        await handlers.update_roster(received(event, SERVICE), uow_factory=uow)


async def schedule_and_fan_out(uow: FakeConferencesUnitOfWork, district: str, batch_size: int = 500) -> Conference:
    conference = await handlers.schedule_conference(scheduling(district), CONTEXT, uow_factory=uow)
    await fan_out(uow, conference, batch_size)
    return conference


async def fan_out(uow: FakeConferencesUnitOfWork, conference: Conference, batch_size: int = 500) -> None:
    [scheduled] = [e for e in uow.committed(ConferenceScheduled) if e.aggregate_id == conference.id]
    fan_out = delivered(scheduled, ConferenceScheduled, SERVICE)
    await handlers.invite_district(fan_out, uow_factory=uow, batch_size=batch_size)


async def invited(uow: FakeConferencesUnitOfWork, conference: Conference) -> dict[str, Invitation]:
    """The conference's invitations by actor id: one per actor, each with one InvitationIssued."""
    invitations = await uow.invitations.for_conference(conference.id)
    issued = [e for e in uow.committed(InvitationIssued) if e.payload["conference_id"] == conference.id]
    assert sorted(e.event_id for e in issued) == sorted(i.issued_event_id for i in invitations)
    by_actor = {i.actor_id: i for i in invitations}
    assert len(by_actor) == len(invitations)
    return by_actor


async def test_scheduling_stores_the_conference_with_its_event() -> None:
    uow = FakeConferencesUnitOfWork()
    conference = await handlers.schedule_conference(scheduling("IV"), CONTEXT, uow_factory=uow)
    assert conference.district_name == "Borbeck" and conference.timezone == "Europe/Berlin"
    [scheduled] = uow.events
    assert ConferenceScheduled.model_validate(scheduled.payload).details == conference.details
    assert (scheduled.producer, scheduled.correlation_id, scheduled.aggregate_id) == (
        SERVICE,
        "request-1",
        conference.id,
    )
    found, invitations = await handlers.conference_with_invitations(conference.id, CONTEXT, uow_factory=uow)
    assert found == conference and invitations == []
    assert await handlers.conferences_by_district("IV", CONTEXT, uow_factory=uow) == [conference]
    assert await handlers.conferences_by_district("I", CONTEXT, uow_factory=uow) == []
    with pytest.raises(ConferenceNotFound):
        await handlers.conference_with_invitations("unknown", CONTEXT, uow_factory=uow)


async def test_fan_out_invites_exactly_the_invitable_actors_of_the_district_in_batches() -> None:
    uow = FakeConferencesUnitOfWork()
    invitable = [registered(f"a{i}", "IV") for i in range(4)] + [registered("a4", "III", "IV")]
    gone = registered("gone", "IV")
    await roster(
        uow,
        *invitable,
        gone,
        registered("no-consent", "IV", consent=False),
        registered("elsewhere", "I"),
        ActorDeactivated(actor_id="gone", revision=2),
    )
    conference = await handlers.schedule_conference(scheduling("IV"), CONTEXT, uow_factory=uow)
    commits = uow.commits
    await fan_out(uow, conference, batch_size=2)
    assert set(await invited(uow, conference)) == {a.actor_id for a in invitable}
    assert uow.commits - commits == 3  # 2 + 2 + 1
    [scheduled] = uow.committed(ConferenceScheduled)
    for issued in uow.committed(InvitationIssued):  # caused by the ConferenceScheduled, in its request
        assert (issued.correlation_id, issued.causation_id) == ("request-1", scheduled.event_id)
        assert InvitationIssued.model_validate(issued.payload).conference == conference.details


async def test_a_fan_out_run_again_after_a_crash_issues_only_the_missing_invitations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, *(registered(f"a{i}", "IV") for i in range(5)))
    conference = await handlers.schedule_conference(scheduling("IV"), CONTEXT, uow_factory=uow)
    add_many, calls = uow.invitations.add_many, 0

    async def crash_in_the_second_batch(invitations: Sequence[Invitation]) -> None:
        nonlocal calls
        calls += 1
        await add_many(invitations)
        if calls == 2:
            raise ConnectionError("the process died")

    monkeypatch.setattr(uow.invitations, "add_many", crash_in_the_second_batch)
    with pytest.raises(ConnectionError):
        await fan_out(uow, conference, batch_size=2)
    assert len(await invited(uow, conference)) == 2  # the first batch committed, the second did not
    monkeypatch.undo()

    await fan_out(uow, conference, batch_size=2)
    assert set(await invited(uow, conference)) == {f"a{i}" for i in range(5)}
    events = len(uow.events)
    await fan_out(uow, conference, batch_size=2)  # redelivered once more: nothing left to issue
    assert len(uow.events) == events


async def test_a_late_joiner_is_invited_to_the_upcoming_conferences_of_its_districts_only() -> None:
    uow = FakeConferencesUnitOfWork()
    first = await schedule_and_fan_out(uow, "II")
    second = await schedule_and_fan_out(uow, "II")
    elsewhere = await schedule_and_fan_out(uow, "III")
    past = replace(first, id="past", starts_at=datetime.now(UTC) - timedelta(days=1))
    async with uow(CONTEXT):
        await uow.conferences.add(past)
        await uow.commit()

    newcomer = registered("newcomer", "II")
    await roster(uow, newcomer, newcomer)  # the second time as a redelivery
    for conference in (first, second):
        assert list(await invited(uow, conference)) == ["newcomer"]
    assert await invited(uow, elsewhere) == {} and await invited(uow, past) == {}
    [late] = {e.correlation_id for e in uow.committed(InvitationIssued)}
    assert late == "test-correlation"  # caused by the actor event, in its correlation

    await roster(uow, updated(newcomer, name="Neuer Name"))  # still invitable: no second invitation
    assert len(uow.committed(InvitationIssued)) == 2


async def test_an_actor_who_gives_consent_later_is_invited_then() -> None:
    uow = FakeConferencesUnitOfWork()
    hesitant = registered("hesitant", "V", consent=False)
    await roster(uow, hesitant)
    conference = await schedule_and_fan_out(uow, "V")
    assert await invited(uow, conference) == {}
    await roster(uow, updated(hesitant, consent_to_notifications=True))
    assert list(await invited(uow, conference)) == ["hesitant"]


async def test_the_roster_ignores_older_and_repeated_revisions() -> None:
    uow = FakeConferencesUnitOfWork()
    actor = registered("a1", "IV")
    moved = updated(actor, districts=["I"])
    await roster(uow, actor, moved)
    commits = uow.commits
    await roster(uow, actor, moved, ActorDeactivated(actor_id="never-seen", revision=2))
    assert uow.commits == commits  # none of them changed anything
    assert await uow.roster.get("a1") == RosterEntry("a1", ("I",), True, True, 2)
    await roster(uow, ActorDeactivated(actor_id="a1", revision=3), updated(actor, districts=["IV"]))
    assert await uow.roster.get("a1") == RosterEntry("a1", ("I",), False, True, 3)


async def test_outcomes_sent_is_final_and_failed_may_become_sent() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "IV"), registered("a2", "IV"))
    conference = await schedule_and_fan_out(uow, "IV")
    issued = await invited(uow, conference)
    first, second = issued["a1"], issued["a2"]

    def sent(invitation: Invitation) -> InvitationSent:
        return InvitationSent(
            invitation_id=invitation.id,
            conference_id=conference.id,
            actor_id=invitation.actor_id,
            message_id="<m>",
            sent_at=SOON,
        )

    def failed(invitation: Invitation, reason: str) -> InvitationFailed:
        return InvitationFailed(
            invitation_id=invitation.id,
            conference_id=conference.id,
            actor_id=invitation.actor_id,
            reason=reason,
            failed_at=SOON,
        )

    async def record(*outcomes: InvitationSent | InvitationFailed) -> dict[str, Invitation]:
        batch = [received(o, SERVICE) for o in outcomes]
        await handlers.record_outcomes(batch, uow_factory=uow)
        return await invited(uow, conference)

    unknown = replace(first, id="unknown")
    after = await record(sent(first), failed(second, "SMTP 550"), failed(unknown, "never issued"))
    assert (after["a1"].status, after["a2"].status, after["a2"].reason) == ("sent", "failed", "SMTP 550")
    after = await record(failed(first, "late"))
    assert (after["a1"].status, after["a1"].reason) == (InvitationStatus.SENT, None)
    after = await record(sent(second), failed(second, "SMTP 550"))  # one batch: sent wins
    assert (after["a2"].status, after["a2"].reason) == (InvitationStatus.SENT, None)
