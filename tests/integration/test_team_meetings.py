"""Team meetings through the actors and the conferences service, in-process, against a real broker
and database: the team is set in the actors service, the conferences service learns it from
``CompetenceTeamChanged`` only, invites just its invitable members to a team meeting, and a member
added later too; a district conference in the same district still invites everyone."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

import actors.app
import actors.settings
import conferences.app
import conferences.settings
from quartier.embedded import Infrastructure
from quartier_shared.events import ACTORS_TOPIC, TEAMS_TOPIC
from tests.helpers import actor_body, caught_up, conference_body, eventually, outbox_empty, running, settings_for

GROUP = "conferences"


async def invited(client: httpx.AsyncClient, conference_id: str, count: int) -> tuple[dict[str, Any], set[str]]:
    """The conference once it has ``count`` invitations, and the actors invited."""

    async def ready() -> dict[str, Any] | None:
        response = await client.get(f"/conferences/{conference_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found if found["counts"]["total"] >= count else None

    found = await eventually(ready)
    return found, {i["actor_id"] for i in found["invitations"]}


async def test_a_team_meeting_invites_the_team_and_later_members(infra: Infrastructure, database_name: str) -> None:
    bootstrap = infra.kafka_bootstrap
    actors_app = actors.app.build(settings_for(actors.settings.Settings, infra, f"{database_name}_a"))
    conferences_app = conferences.app.build(settings_for(conferences.settings.Settings, infra, f"{database_name}_c"))
    quarter_manager = infra.auth_headers("quarter_manager", districts=("IV",))
    async with contextlib.AsyncExitStack() as stack:
        registry = await stack.enter_async_context(running(actors_app, infra.auth_headers()))
        coordinator = await stack.enter_async_context(running(conferences_app, infra.auth_headers()))

        async def register(**fields: Any) -> str:
            response = await registry.post("/actors", json=actor_body(**fields))
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        health_office = await register(name="Gesundheitsamt", kind="public_agency")
        jobcenter = await register(name="Jobcenter Essen", kind="public_agency", districts=["III", "IV"])
        no_consent = await register(name="KI Essen", kind="public_agency", consent_to_notifications=False)
        family_office = await register(name="Kinder- und Familienbüro", kind="public_agency")
        round_table = await register(name="Runder Tisch Borbeck", kind="round_table")

        team = {"members": [health_office, jobcenter, no_consent]}
        answer = await registry.put("/districts/IV/team", json=team, headers=quarter_manager)
        assert answer.status_code == 200, answer.text
        await eventually(lambda: outbox_empty(actors_app))
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC, TEAMS_TOPIC))

        wrong = await coordinator.post("/conferences", json=conference_body(audience="everyone"))
        assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "audience"], wrong.text

        created = await coordinator.post("/conferences", json=conference_body(title="Kompetenzteam", audience="team"))
        assert created.status_code == 201, created.text
        assert created.json()["audience"] == "team"
        meeting_id = created.json()["id"]
        meeting, actor_ids = await invited(coordinator, meeting_id, 2)
        assert meeting["audience"] == "team"
        assert actor_ids == {health_office, jobcenter}  # the member without consent is not invited

        # The quarter manager adds the family office: invited to the upcoming team meeting.
        team = {"members": [*team["members"], family_office]}
        answer = await registry.put("/districts/IV/team", json=team, headers=quarter_manager)
        assert answer.status_code == 200 and answer.json()["revision"] == 2, answer.text
        _, actor_ids = await invited(coordinator, meeting_id, 3)
        assert actor_ids == {health_office, jobcenter, family_office}

        # A district conference in the same district invites every invitable actor.
        created = await coordinator.post("/conferences", json=conference_body())
        assert created.status_code == 201 and created.json()["audience"] == "district", created.text
        _, actor_ids = await invited(coordinator, created.json()["id"], 4)
        assert actor_ids == {health_office, jobcenter, family_office, round_table}

        # Everything handled: the team meeting still has exactly its three.
        await eventually(lambda: outbox_empty(conferences_app))
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC, TEAMS_TOPIC))
        meeting, actor_ids = await invited(coordinator, meeting_id, 3)
        assert actor_ids == {health_office, jobcenter, family_office} and meeting["counts"]["total"] == 3
