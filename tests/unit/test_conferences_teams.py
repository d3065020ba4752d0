"""Team meetings, on the fake unit of work: the copy of each district's competence team, who a
conference with ``audience == "team"`` invites, and who is invited late (a member who becomes
invitable, an invitable actor who becomes a member); each also when an event comes again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from conferences import handlers
from conferences.api import ConferenceIn
from conferences.commands import PublishConference
from conferences.domain import Conference
from conferences.teams import TeamCopy
from quartier_shared.events import (
    ActorDeactivated,
    CompetenceTeamChanged,
    ConferenceDrafted,
    ConferenceScheduled,
    InvitationIssued,
)
from tests.helpers import conference_body
from tests.unit.fakes import received
from tests.unit.test_conferences_handlers import (
    CONTEXT,
    OFFSETS,
    SERVICE,
    FakeConferencesUnitOfWork,
    fan_out,
    invited,
    registered,
    roster,
    scheduling,
    updated,
)


async def team(uow: FakeConferencesUnitOfWork, district: str, revision: int, *members: str) -> None:
    event = CompetenceTeamChanged(district=district, members=list(members), revision=revision)
    await handlers.update_team(received(event, SERVICE), uow_factory=uow)


async def meeting(uow: FakeConferencesUnitOfWork, district: str, *, draft: bool = False) -> Conference:
    """A team meeting of ``district``, scheduled (and fanned out) or drafted."""
    command = replace(scheduling(district), audience="team", draft=draft)
    conference = await handlers.schedule_conference(command, CONTEXT, uow_factory=uow, reminders_before=OFFSETS)
    if not draft:
        await fan_out(uow, conference)
    return conference


async def district_conference(uow: FakeConferencesUnitOfWork, district: str) -> Conference:
    conference = await handlers.schedule_conference(
        scheduling(district), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    await fan_out(uow, conference)
    return conference


async def test_a_team_meeting_invites_only_the_invitable_members_of_its_districts_team() -> None:
    uow = FakeConferencesUnitOfWork()
    hesitant = registered("hesitant", "IV", consent=False)
    await roster(
        uow,
        registered("member", "IV"),
        registered("member-too", "III", "IV"),
        hesitant,
        registered("gone", "IV"),
        ActorDeactivated(actor_id="gone", revision=2),
        registered("outsider", "IV"),
        registered("elsewhere", "I"),
    )
    await team(uow, "IV", 1, "member", "member-too", "hesitant", "gone", "elsewhere", "never-seen")
    await team(uow, "I", 1, "elsewhere")

    conference = await meeting(uow, "IV")
    assert conference.audience == "team" and conference.details.audience == "team"
    [scheduled] = uow.committed(ConferenceScheduled)
    assert scheduled.payload["details"]["audience"] == "team"
    assert set(await invited(uow, conference)) == {"member", "member-too"}

    # The same district's ordinary conference still invites every invitable actor.
    everyone = await district_conference(uow, "IV")
    assert everyone.audience == "district"
    assert set(await invited(uow, everyone)) == {"member", "member-too", "outsider"}


async def test_a_team_meeting_without_a_team_invites_nobody_until_members_are_set() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "V"))
    conference = await meeting(uow, "V")
    assert await invited(uow, conference) == {}
    await team(uow, "V", 1, "a1")
    assert list(await invited(uow, conference)) == ["a1"]


async def test_a_member_added_later_is_invited_to_the_upcoming_team_meetings_of_that_district_only() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("first", "IV"), registered("newcomer", "IV", "III"), registered("x", "III"))
    await team(uow, "IV", 1, "first")
    await team(uow, "III", 1, "x")
    upcoming = await meeting(uow, "IV")
    draft = await meeting(uow, "IV", draft=True)
    other_district = await meeting(uow, "III")
    everyone = await district_conference(uow, "IV")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    past = replace(upcoming, id="past", starts_at=yesterday, ends_at=yesterday + timedelta(hours=2))
    async with uow(CONTEXT):
        await uow.conferences.add(past)
        await uow.commit()
    before = {c.id: set(await invited(uow, c)) for c in (everyone, other_district)}

    changed = CompetenceTeamChanged(district="IV", members=["first", "newcomer"], revision=2)
    await handlers.update_team(received(changed, SERVICE), uow_factory=uow)
    await handlers.update_team(received(changed, SERVICE), uow_factory=uow)  # redelivered
    assert set(await invited(uow, upcoming)) == {"first", "newcomer"}
    assert await invited(uow, draft) == {} and await invited(uow, past) == {}
    assert {c.id: set(await invited(uow, c)) for c in (everyone, other_district)} == before
    assert len([e for e in uow.committed(InvitationIssued) if e.payload["conference_id"] == upcoming.id]) == 2

    # Leaving the team withdraws nothing; coming back issues nothing twice.
    await team(uow, "IV", 3, "first")
    await team(uow, "IV", 4, "first", "newcomer")
    assert set(await invited(uow, upcoming)) == {"first", "newcomer"}

    # Published, the draft invites the team as it is then.
    published = await handlers.publish_conference(
        PublishConference(draft.id), CONTEXT, uow_factory=uow, reminders_before=OFFSETS
    )
    await fan_out(uow, published)
    assert set(await invited(uow, published)) == {"first", "newcomer"}


async def test_a_member_who_becomes_invitable_is_invited_to_team_meetings_an_outsider_is_not() -> None:
    uow = FakeConferencesUnitOfWork()
    hesitant = registered("hesitant", "VI", consent=False)
    outsider = registered("outsider", "VI", consent=False)
    await roster(uow, hesitant, outsider)
    await team(uow, "VI", 1, "hesitant")
    conference = await meeting(uow, "VI")
    assert await invited(uow, conference) == {}

    await roster(
        uow, updated(hesitant, consent_to_notifications=True), updated(outsider, consent_to_notifications=True)
    )
    assert list(await invited(uow, conference)) == ["hesitant"]


async def test_an_older_or_repeated_team_revision_changes_nothing() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "II"), registered("a2", "II"))
    await team(uow, "II", 2, "a1")
    conference = await meeting(uow, "II")
    commits = uow.commits
    await team(uow, "II", 1, "a1", "a2")  # older: arrives late
    await team(uow, "II", 2, "a1", "a2")  # the same revision again
    assert uow.commits == commits
    assert await uow.teams.get("II") == TeamCopy("II", ("a1",), 2)
    assert list(await invited(uow, conference)) == ["a1"]


async def test_a_draft_team_meeting_carries_its_audience_and_invites_nobody() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "VII"))
    await team(uow, "VII", 1, "a1")
    draft = await meeting(uow, "VII", draft=True)
    [drafted] = uow.committed(ConferenceDrafted)
    assert drafted.payload["details"]["audience"] == "team"
    assert await invited(uow, draft) == {}


@pytest.mark.parametrize("audience", ["everyone", "Team", 1, None, ["team"]])
def test_the_audience_is_district_or_team_and_a_wrong_one_names_the_field(audience: object) -> None:
    assert ConferenceIn.model_validate(conference_body()).audience == "district"
    assert ConferenceIn.model_validate(conference_body(audience="team")).audience == "team"
    with pytest.raises(ValidationError) as raised:
        ConferenceIn.model_validate(conference_body(audience=audience))
    assert [e["loc"] for e in raised.value.errors()] == [("audience",)]


async def test_a_member_the_roster_learns_of_after_the_team_change_is_invited_then() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("known", "IX"))
    conference = await meeting(uow, "IX")
    await team(uow, "IX", 1, "known", "not-yet-seen")  # its ActorRegistered is still on its way
    assert list(await invited(uow, conference)) == ["known"]
    placeholder = await uow.roster.get("not-yet-seen")
    assert placeholder is not None and not placeholder.invitable and placeholder.revision == 0
    assert await uow.roster.invitable_in("IX") == ["known"]

    await roster(uow, registered("not-yet-seen", "IX"))
    assert set(await invited(uow, conference)) == {"known", "not-yet-seen"}
