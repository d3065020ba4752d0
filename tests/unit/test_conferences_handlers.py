"""Conferences: the service layer, on a fake unit of work (no I/O). Scheduling, the fan-out, late
joiners, the roster's revisions and delivery outcomes, each also when an event comes again."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from conferences import handlers
from conferences.commands import PublishConference, ResendInvitation, ScheduleConference
from conferences.domain import (
    Conference,
    ConferenceNotFound,
    ConferenceStatus,
    Invitation,
    InvitationNotFound,
    InvitationStatus,
    NotNow,
    Reminder,
    RosterEntry,
)
from conferences.repository import (
    ConferenceRepository,
    InvitationRepository,
    ReminderRepository,
    RosterRepository,
    TeamRepository,
)
from conferences.teams import TeamCopy
from quartier_shared.events import (
    ActorDeactivated,
    ActorRegistered,
    ActorUpdated,
    ConferenceDrafted,
    ConferenceScheduled,
    EventContext,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
    Venue,
)
from quartier_shared.pagination import FIRST_PAGE, PageRequest
from tests.helpers import actor_registered
from tests.unit.fakes import FakeUnitOfWork, InMemory, delivered, paged, received

SERVICE = "conferences"
CONTEXT = EventContext(SERVICE, "request-1")
SOON = datetime.now(UTC) + timedelta(days=30)
OFFSETS = (("P7D", timedelta(days=7)), ("P1D", timedelta(days=1)))


class FakeConferenceRepository(InMemory[Conference]):
    async def add(self, conference: Conference) -> None:
        self.insert(conference.id, conference)

    async def get(self, conference_id: str) -> Conference | None:
        return self.rows.get(conference_id)

    async def save(self, conference: Conference) -> None:
        assert conference.id in self.rows
        self.rows[conference.id] = conference

    async def find(
        self, district: str | None, *, within: Collection[str] | None = None, page: PageRequest = FIRST_PAGE
    ) -> list[Conference]:
        found = [c for c in self.rows.values() if district in (None, c.district)]
        found = [c for c in found if within is None or c.district in within]
        return paged(found, page, lambda c: (c.starts_at, c.id))

    async def upcoming_in(self, districts: Iterable[str], now: datetime) -> list[Conference]:
        wanted = set(districts)
        upcoming = [c for c in self.rows.values() if c.district in wanted and c.is_upcoming(now)]
        return sorted(upcoming, key=lambda c: c.starts_at)

    async def touch(self, conference_id: str) -> None:
        self.touched.append(conference_id)

    def __init__(self) -> None:
        super().__init__()
        self.touched: list[str] = []


class FakeInvitationRepository(InMemory[Invitation]):
    async def add_many(self, invitations: Sequence[Invitation]) -> None:
        for invitation in invitations:
            self.insert(invitation.id, invitation)

    async def get(self, invitation_id: str) -> Invitation | None:
        return self.rows.get(invitation_id)

    async def save(self, invitation: Invitation) -> None:
        assert invitation.id in self.rows
        self.rows[invitation.id] = invitation

    async def exists(self, conference_id: str, actor_id: str) -> bool:
        return Invitation.id_for(conference_id, actor_id) in self.rows

    async def save_answer(self, invitation: Invitation) -> None:
        stored = self.rows[invitation.id]
        self.rows[invitation.id] = replace(stored, answer=invitation.answer)

    async def invited_actor_ids(self, conference_id: str) -> set[str]:
        return {i.actor_id for i in self.rows.values() if i.conference_id == conference_id}

    async def for_conference(self, conference_id: str) -> list[Invitation]:
        return sorted((i for i in self.rows.values() if i.conference_id == conference_id), key=lambda i: i.id)

    async def of_actor(self, actor_id: str, limit: int | None = None) -> list[Invitation]:
        return sorted((i for i in self.rows.values() if i.actor_id == actor_id), key=lambda i: i.id)[:limit]

    async def record_outcomes(self, outcomes: Sequence[InvitationSent | InvitationFailed]) -> None:
        now = datetime.now(UTC)
        for outcome in sorted(outcomes, key=lambda o: isinstance(o, InvitationSent)):  # failures first
            invitation = self.rows.get(outcome.invitation_id)
            if invitation is not None:
                self.rows[invitation.id] = invitation.with_outcome(outcome, now)

    async def told_before(self, conference_id: str, sequence: int, limit: int) -> list[Invitation]:
        found = [i for i in await self.for_conference(conference_id) if i.sequence < sequence]
        return found[:limit]

    async def mark_told(self, invitations: Sequence[Invitation]) -> None:
        for invitation in invitations:
            self.rows[invitation.id] = replace(self.rows[invitation.id], sequence=invitation.sequence)

    async def sent_after(self, conference_id: str, after: str | None, limit: int) -> list[Invitation]:
        found = [i for i in await self.for_conference(conference_id) if i.status is InvitationStatus.SENT]
        return [i for i in found if after is None or i.id > after][:limit]


class FakeReminderRepository(InMemory[Reminder]):
    """Reminders by id; the last nudge of each conference under ``nudge/<conference id>``."""

    def __init__(self) -> None:
        super().__init__()
        self.nudges: InMemory[datetime] = InMemory()

    async def replace_planned(self, conference_id: str, reminders: Sequence[Reminder]) -> None:
        for reminder in await self.for_conference(conference_id):
            if not reminder.is_nudge:
                del self.rows[reminder.id]
        for reminder in reminders:
            self.insert(reminder.id, reminder)

    async def remove_all(self, conference_id: str) -> None:
        self.rows = {k: r for k, r in self.rows.items() if r.conference_id != conference_id}

    async def add(self, reminder: Reminder) -> None:
        self.insert(reminder.id, reminder)

    async def claim_due(self, now: datetime, owner: str, until: datetime) -> Reminder | None:
        due = sorted(
            (r for r in self.rows.values() if r.due_at <= now and r.lease_until <= now), key=lambda r: r.due_at
        )
        if not due:
            return None
        claimed = replace(due[0], owner=owner, lease_until=until)
        self.rows[claimed.id] = claimed
        return claimed

    async def advance(self, reminder: Reminder, after: str, until: datetime) -> bool:
        stored = self.rows.get(reminder.id)
        if stored is None or stored.owner != reminder.owner:
            return False
        self.rows[reminder.id] = replace(stored, after=after, lease_until=until)
        return True

    async def remove(self, reminder: Reminder) -> None:
        stored = self.rows.get(reminder.id)
        if stored is not None and stored.due_at == reminder.due_at:
            del self.rows[reminder.id]

    async def for_conference(self, conference_id: str) -> list[Reminder]:
        return sorted((r for r in self.rows.values() if r.conference_id == conference_id), key=lambda r: r.due_at)

    async def last_nudge(self, conference_id: str) -> datetime | None:
        return self.nudges.rows.get(conference_id)

    async def set_last_nudge(self, conference_id: str, at: datetime) -> None:
        self.nudges.rows[conference_id] = at


class FakeRosterRepository(InMemory[RosterEntry]):
    async def get(self, actor_id: str) -> RosterEntry | None:
        return self.rows.get(actor_id)

    async def save(self, entry: RosterEntry) -> None:
        self.rows[entry.id] = entry

    async def invitable_in(self, district: str) -> list[str]:
        return [e.id for e in self.rows.values() if e.invitable and district in e.districts]

    async def without_consent(self, actor_ids: Collection[str]) -> set[str]:
        wanted = set(actor_ids)
        return {e.id for e in self.rows.values() if e.id in wanted and not e.consent_to_notifications and e.revision}

    async def hold(self, actor_ids: Collection[str]) -> None:
        for actor_id in actor_ids:
            self.rows.setdefault(actor_id, RosterEntry(actor_id, (), False, False, 0))


class FakeTeamRepository(InMemory[TeamCopy]):
    async def get(self, district: str) -> TeamCopy | None:
        return self.rows.get(district)

    async def get_many(self, districts: Iterable[str]) -> list[TeamCopy]:
        return [self.rows[d] for d in set(districts) if d in self.rows]

    async def save(self, team: TeamCopy) -> None:
        self.rows[team.district] = team


class FakeConferencesUnitOfWork(FakeUnitOfWork):
    conferences: ConferenceRepository
    invitations: InvitationRepository
    roster: RosterRepository
    teams: TeamRepository
    reminders: ReminderRepository

    def __init__(self) -> None:
        conferences, invitations, roster, teams, reminders = (
            FakeConferenceRepository(),
            FakeInvitationRepository(),
            FakeRosterRepository(),
            FakeTeamRepository(),
            FakeReminderRepository(),
        )
        super().__init__(conferences, invitations, roster, teams, reminders, reminders.nudges)
        self.conferences, self.invitations, self.roster = conferences, invitations, roster
        self.teams, self.reminders = teams, reminders


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
    conference = await handlers.schedule_conference(
        scheduling(district), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
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
    conference = await handlers.schedule_conference(
        scheduling("IV"), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
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
    assert (await handlers.conferences_by_district("IV", CONTEXT, uow_factory=uow)).items == [conference]
    assert (await handlers.conferences_by_district("I", CONTEXT, uow_factory=uow)).items == []
    assert (await handlers.conferences_by_district(None, CONTEXT, uow_factory=uow, within={"I"})).items == []
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
    conference = await handlers.schedule_conference(
        scheduling("IV"), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
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
    conference = await handlers.schedule_conference(
        scheduling("IV"), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
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


async def test_a_draft_invites_nobody_until_it_is_published_once() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "IV"))
    command = replace(scheduling("IV"), draft=True)
    draft = await handlers.schedule_conference(command, CONTEXT, uow_factory=uow, reminders_before=OFFSETS)
    assert draft.status is ConferenceStatus.DRAFT
    assert [e.event_type for e in uow.events] == ["ConferenceDrafted"]
    assert ConferenceDrafted.model_validate(uow.events[0].payload).details == draft.details
    # A late joiner is not invited to a draft, and a ConferenceScheduled of it (replayed, say) is
    # not acted on while it is one.
    await roster(uow, registered("late", "IV"))
    stray = ConferenceScheduled(conference_id=draft.id, details=draft.details)
    await handlers.invite_district(received(stray, SERVICE), uow_factory=uow, batch_size=10)
    assert await uow.invitations.for_conference(draft.id) == []
    listed = await handlers.conferences_by_district("IV", CONTEXT, uow_factory=uow)
    assert [c.status for c in listed.items] == ["draft"]

    published = await handlers.publish_conference(
        PublishConference(draft.id), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    assert published.status is ConferenceStatus.SCHEDULED
    [scheduled] = uow.committed(ConferenceScheduled)
    assert scheduled.event_id == published.published_event_id
    assert ConferenceScheduled.model_validate(scheduled.payload).details == draft.details
    await fan_out(uow, published)
    assert set(await invited(uow, published)) == {"a1", "late"}
    # Publishing again answers with the conference and raises nothing.
    events = len(uow.events)
    again = await handlers.publish_conference(
        PublishConference(draft.id), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    assert again == published and len(uow.events) == events
    with pytest.raises(ConferenceNotFound):
        await handlers.publish_conference(
            PublishConference("unknown"), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
        )


async def test_a_draft_whose_start_has_passed_is_not_published() -> None:
    uow = FakeConferencesUnitOfWork()
    draft = await handlers.schedule_conference(
        replace(scheduling("IV"), draft=True), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    await uow.conferences.save(replace(draft, starts_at=datetime.now(UTC) - timedelta(minutes=1)))
    with pytest.raises(NotNow):
        await handlers.publish_conference(
            PublishConference(draft.id), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
        )
    assert uow.committed(ConferenceScheduled) == []


async def test_a_resend_issues_the_invitation_again_and_follows_its_own_outcome() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "IV"))
    conference = await schedule_and_fan_out(uow, "IV")
    first = (await invited(uow, conference))["a1"]
    failed = InvitationFailed(
        invitation_id=first.id, conference_id=conference.id, actor_id="a1", reason="SMTP 550", failed_at=SOON
    )
    await handlers.record_outcomes([received(failed, SERVICE)], uow_factory=uow)

    resend = ResendInvitation(conference.id, first.id)
    again = await handlers.resend_invitation(resend, CONTEXT, uow_factory=uow)
    assert (again.status, again.reason, again.resend) == (InvitationStatus.PENDING, None, 1)
    issued = uow.committed(InvitationIssued)
    assert [e.payload["resend"] for e in issued] == [0, 1]
    assert issued[1].event_id == again.issued_event_id != issued[0].event_id
    assert InvitationIssued.model_validate(issued[1].payload).conference == conference.details

    # A late copy of the first attempt's failure changes nothing; the resend's outcome does.
    await handlers.record_outcomes([received(failed, SERVICE)], uow_factory=uow)
    assert (await uow.invitations.get(first.id)) == again
    sent = InvitationSent(
        invitation_id=first.id, conference_id=conference.id, actor_id="a1", message_id="<2>", sent_at=SOON, resend=1
    )
    await handlers.record_outcomes([received(sent, SERVICE)], uow_factory=uow)
    stored = await uow.invitations.get(first.id)
    assert stored is not None and (stored.status, stored.resend) == (InvitationStatus.SENT, 1)

    with pytest.raises(InvitationNotFound):
        await handlers.resend_invitation(ResendInvitation(conference.id, "unknown"), CONTEXT, uow_factory=uow)
    with pytest.raises(ConferenceNotFound):
        await handlers.resend_invitation(ResendInvitation("unknown", first.id), CONTEXT, uow_factory=uow)


async def test_no_resend_once_the_conference_has_started() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "IV"))
    conference = await schedule_and_fan_out(uow, "IV")
    invitation = (await invited(uow, conference))["a1"]
    await uow.conferences.save(replace(conference, starts_at=datetime.now(UTC) - timedelta(minutes=1)))
    events = len(uow.events)
    with pytest.raises(NotNow):
        await handlers.resend_invitation(ResendInvitation(conference.id, invitation.id), CONTEXT, uow_factory=uow)
    assert len(uow.events) == events and (await uow.invitations.get(invitation.id)) == invitation
