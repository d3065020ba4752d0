"""Actors: the service layer, on a fake unit of work (no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

import pytest

from actors import handlers
from actors.audit import AuditEntry
from actors.commands import DeactivateActor, EraseActor, RegisterActor, SetCompetenceTeam, UpdateActor
from actors.consent import ConsentStatement
from actors.domain import Actor, ActorNotFound, CompetenceTeam, TeamMembersRefused
from actors.erasure import Erasure
from actors.repository import ActorRepository, AuditLog, ErasureRepository, TeamRepository
from quartier_shared.events import (
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    ActorDeactivated,
    ActorRegistered,
    ActorUpdated,
    CompetenceTeamChanged,
    ContactChanged,
    EventContext,
    Tombstone,
)
from quartier_shared.pagination import FIRST_PAGE, PageRequest, decode_cursor
from tests.unit.fakes import FakeUnitOfWork, InMemory, paged

CONTEXT = EventContext("actors", "request-1")
REGISTRATION = RegisterActor(
    name="Runder Tisch Frintrop",
    kind="round_table",
    districts=["IV", "III"],
    email="frintrop@example.org",
    language="en",
    consent=ConsentStatement(True, "consent", "2026-11"),
    by="subject-manager",
)


class FakeActorRepository(InMemory[Actor]):
    def __init__(self) -> None:
        super().__init__()
        self.published: set[str] = set()  # ids marked as published in the current form

    async def add(self, actor: Actor) -> None:
        self.insert(actor.id, actor)
        self.published.add(actor.id)

    async def get(self, actor_id: str) -> Actor | None:
        return self.rows.get(actor_id)

    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Actor]:
        return {i: self.rows[i] for i in actor_ids if i in self.rows}

    async def save(self, actor: Actor) -> None:
        self.rows[actor.id] = actor
        self.published.add(actor.id)

    async def not_published_in_current_form(self) -> list[str]:
        return [actor_id for actor_id in self.rows if actor_id not in self.published]

    async def find(
        self,
        district: str | None,
        include_inactive: bool,
        *,
        within: Collection[str] | None = None,
        page: PageRequest = FIRST_PAGE,
        kind: str | None = None,
        text: str | None = None,
    ) -> list[Actor]:
        found = [
            a
            for a in self.rows.values()
            if (district is None or district in a.districts)
            and (kind is None or a.kind == kind)
            and (not text or text.casefold() in f"{a.name}\n{a.email}".casefold())
            and (within is None or not set(within).isdisjoint(a.districts))
            and (include_inactive or a.active)
        ]
        return paged(found, page, lambda a: (a.created_at, a.id))

    async def emails_taken(self, emails: Collection[str]) -> set[str]:
        return {a.email.lower() for a in self.rows.values()} & {e.lower() for e in emails}


class FakeTeamRepository(InMemory[CompetenceTeam]):
    async def get(self, district: str) -> CompetenceTeam | None:
        return self.rows.get(district)

    async def save(self, team: CompetenceTeam) -> None:
        self.rows[team.district] = team


class FakeErasureRepository(InMemory[Erasure]):
    async def get(self, actor_id: str) -> Erasure | None:
        return self.rows.get(actor_id)

    async def save(self, erasure: Erasure) -> None:
        self.rows[erasure.actor_id] = erasure


class FakeAuditLog(InMemory[AuditEntry]):
    """Also counts its writes: auditing must cost one write per request."""

    writes = 0

    async def record(self, entries: Iterable[AuditEntry]) -> None:
        batch = list(entries)
        if batch:
            self.writes += 1
        for entry in batch:
            self.insert(entry.id, entry)

    async def of_actor(self, actor_id: str, page: PageRequest = FIRST_PAGE) -> list[AuditEntry]:
        return paged([e for e in self.rows.values() if e.actor_id == actor_id], page, lambda e: (e.at, e.id))


class FakeActorsUnitOfWork(FakeUnitOfWork):
    actors: ActorRepository
    teams: TeamRepository
    erasures: ErasureRepository
    audit: AuditLog

    def __init__(self) -> None:
        actors, teams, erasures, audit = (
            FakeActorRepository(),
            FakeTeamRepository(),
            FakeErasureRepository(),
            FakeAuditLog(),
        )
        super().__init__(actors, teams, erasures, audit)
        self.actors, self.teams, self.erasures, self.audit = actors, teams, erasures, audit
        self.audit_log, self.erasure_records = audit, erasures  # the fakes, for the tests to look into


async def test_registering_stores_the_actor_with_its_event_in_the_requests_context() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, CONTEXT, uow_factory=uow)
    assert await handlers.actor_by_id(actor.id, CONTEXT, uow_factory=uow) == actor
    registered, contact = uow.events
    assert contact.event_type == "ContactChanged" and contact.payload["email"] == "frintrop@example.org"
    assert "email" not in registered.payload and "name" not in registered.payload
    assert registered.event_type == "ActorRegistered" and registered.aggregate_id == actor.id
    assert (registered.producer, registered.correlation_id) == ("actors", "request-1")
    assert ActorRegistered.model_validate(registered.payload).districts == ["IV", "III"]


async def test_an_update_that_changes_nothing_commits_nothing() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, CONTEXT, uow_factory=uow)
    updated = await handlers.update_actor(UpdateActor(actor.id, {"language": "de"}), CONTEXT, uow_factory=uow)
    same = await handlers.update_actor(UpdateActor(actor.id, {"language": "de"}), CONTEXT, uow_factory=uow)
    assert updated.revision == same.revision == 2
    assert [e.event_type for e in uow.events] == [
        "ActorRegistered",
        "ContactChanged",
        "ActorUpdated",
        "ContactChanged",
    ]
    assert uow.commits == 2
    assert ActorUpdated.model_validate(uow.events[-2].payload).language == "de"
    assert ContactChanged.model_validate(uow.events[-1].payload).revision == 2


async def test_deactivating_twice_records_one_event_and_hides_the_actor_from_the_list() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, CONTEXT, uow_factory=uow)
    first = await handlers.deactivate_actor(DeactivateActor(actor.id), CONTEXT, uow_factory=uow)
    second = await handlers.deactivate_actor(DeactivateActor(actor.id), CONTEXT, uow_factory=uow)
    assert not first.active and second == first
    assert uow.committed(ActorDeactivated)[0].payload == {"actor_id": actor.id, "revision": 2}
    contact = ContactChanged.model_validate(uow.events[-1].payload)
    assert (contact.revision, contact.active, contact.name) == (2, False, "Runder Tisch Frintrop")
    assert (await handlers.actors_by_district("IV", False, CONTEXT, uow_factory=uow)).items == []
    assert (await handlers.actors_by_district("IV", True, CONTEXT, uow_factory=uow)).items == [first]


async def test_an_unknown_actor_is_not_found_and_nothing_is_recorded() -> None:
    uow = FakeActorsUnitOfWork()
    with pytest.raises(ActorNotFound):
        await handlers.update_actor(UpdateActor("missing", {"name": "x"}), CONTEXT, uow_factory=uow)
    with pytest.raises(ActorNotFound):
        await handlers.deactivate_actor(DeactivateActor("missing"), CONTEXT, uow_factory=uow)
    with pytest.raises(ActorNotFound):
        await handlers.actor_by_id("missing", CONTEXT, uow_factory=uow)
    assert uow.events == [] and uow.commits == 0


async def test_pages_follow_each_other_without_gaps_or_repeats_and_keep_to_the_readers_districts() -> None:
    uow = FakeActorsUnitOfWork()
    for n in range(7):
        districts = ["IV"] if n % 2 else ["I"]
        await handlers.register_actor(
            replace(REGISTRATION, name=f"Verein {n}", districts=districts), CONTEXT, uow_factory=uow
        )
    seen, page = [], PageRequest(limit=2)
    while True:
        found = await handlers.actors_by_district(None, False, CONTEXT, uow_factory=uow, within={"IV"}, page=page)
        seen += found.items
        if found.next_cursor is None:
            break
        page = PageRequest(limit=2, after=decode_cursor(found.next_cursor))
    assert [a.name for a in seen] == ["Verein 1", "Verein 3", "Verein 5"]
    everyone = await handlers.actors_by_district(None, False, CONTEXT, uow_factory=uow, page=PageRequest(limit=7))
    assert len(everyone.items) == 7 and everyone.next_cursor is None


async def test_a_competence_team_is_set_whole_and_only_from_active_actors_of_its_district() -> None:
    uow = FakeActorsUnitOfWork()
    office = await handlers.register_actor(replace(REGISTRATION, kind="public_agency"), CONTEXT, uow_factory=uow)
    elsewhere = await handlers.register_actor(replace(REGISTRATION, districts=["I"]), CONTEXT, uow_factory=uow)
    gone = await handlers.register_actor(REGISTRATION, CONTEXT, uow_factory=uow)
    await handlers.deactivate_actor(DeactivateActor(gone.id), CONTEXT, uow_factory=uow)
    assert await handlers.competence_team("IV", CONTEXT, uow_factory=uow) == CompetenceTeam("IV")

    team = await handlers.set_competence_team(SetCompetenceTeam("IV", [office.id, office.id]), CONTEXT, uow_factory=uow)
    assert team.members == (office.id,) and team.revision == 1
    again = await handlers.set_competence_team(SetCompetenceTeam("IV", [office.id]), CONTEXT, uow_factory=uow)
    assert again == team  # nothing changed: no event
    [changed] = uow.committed(CompetenceTeamChanged)
    assert changed.payload == {"district": "IV", "members": [office.id], "revision": 1}

    for refused in (["nobody"], [elsewhere.id], [gone.id]):
        with pytest.raises(TeamMembersRefused, match=refused[0]):
            await handlers.set_competence_team(SetCompetenceTeam("IV", refused), CONTEXT, uow_factory=uow)
    assert await handlers.competence_team("IV", CONTEXT, uow_factory=uow) == team

    emptied = await handlers.set_competence_team(SetCompetenceTeam("IV", []), CONTEXT, uow_factory=uow)
    assert emptied.members == () and emptied.revision == 2


async def test_every_change_records_the_contact_with_the_same_revision_after_the_actor_event() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, CONTEXT, uow_factory=uow)
    changes = {"name": "Runder Tisch Frintrop-Nord", "email": "nord@example.org"}
    await handlers.update_actor(UpdateActor(actor.id, changes), CONTEXT, uow_factory=uow)
    await handlers.deactivate_actor(DeactivateActor(actor.id), CONTEXT, uow_factory=uow)
    pairs = list(zip(uow.events[::2], uow.events[1::2], strict=True))
    assert [(a.event_type, c.event_type) for a, c in pairs] == [
        ("ActorRegistered", "ContactChanged"),
        ("ActorUpdated", "ContactChanged"),
        ("ActorDeactivated", "ContactChanged"),
    ]
    assert all(a.payload["revision"] == c.payload["revision"] for a, c in pairs)
    for actor_event, _ in pairs:  # the actor events name nobody
        assert not {"name", "email"} & set(actor_event.payload)
    last = ContactChanged.model_validate(uow.events[-1].payload)
    assert (last.name, last.email, last.active, last.consent_to_notifications) == (
        "Runder Tisch Frintrop-Nord",
        "nord@example.org",
        False,
        False,  # a new address withdraws consent
    )


async def test_erasure_leaves_tombstones_on_the_contact_topic_and_its_dead_letters() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, CONTEXT, uow_factory=uow)
    await handlers.erase_actor(EraseActor(actor.id, "subject-dpo"), CONTEXT, uow_factory=uow)
    await handlers.erase_actor(EraseActor(actor.id, "subject-dpo"), CONTEXT, uow_factory=uow)  # again: no more
    assert uow.events[-1].event_type == "ActorErased"
    assert uow.tombstones == [Tombstone(CONTACTS_TOPIC, actor.id), Tombstone(CONTACTS_DEAD_LETTER_TOPIC, actor.id)]


async def test_actors_stored_before_version_2_are_published_in_the_current_form_once() -> None:
    uow = FakeActorsUnitOfWork()
    old, _ = Actor.register(replace(REGISTRATION, name="Altes Netzwerk"))
    old = replace(old, revision=4, active=False)
    erased, _ = Actor.register(REGISTRATION)
    erased, _ = erased.erase("subject-dpo")
    uow.actors.rows.update({old.id: old, erased.id: erased})  # type: ignore[attr-defined]
    current = await handlers.register_actor(REGISTRATION, CONTEXT, uow_factory=uow)
    uow.events.clear()

    assert await handlers.publish_in_current_form(CONTEXT, uow_factory=uow) == 2
    assert await handlers.publish_in_current_form(CONTEXT, uow_factory=uow) == 0  # marked: once
    snapshot, contact = uow.events
    assert snapshot.event_type == "ActorUpdated" and snapshot.payload["revision"] == 4
    assert not snapshot.payload["active"] and "name" not in snapshot.payload
    assert ContactChanged.model_validate(contact.payload).name == "Altes Netzwerk"
    assert uow.tombstones == [Tombstone(CONTACTS_TOPIC, erased.id), Tombstone(CONTACTS_DEAD_LETTER_TOPIC, erased.id)]
    assert current.id not in {e.aggregate_id for e in uow.events}
