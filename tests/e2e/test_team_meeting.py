"""End to end: a quarter manager sets the district's competence team, a coordinator schedules a
team meeting, and only the team's consenting members get the mail; a member added later gets it too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from quartier.processes import ServiceProcesses
from tests.helpers import actor_body, conference_body, eventually, read_mails


async def test_a_team_meeting_mails_only_the_team(services: ServiceProcesses, smtp_sink: tuple[int, Path]) -> None:
    _, maildir = smtp_sink
    actors, conferences = services.urls["actors"], services.urls["conferences"]
    quarter_manager = services.infra.auth_headers("quarter_manager", districts=("IV",))
    async with httpx.AsyncClient(timeout=10, headers=services.infra.auth_headers()) as http:

        async def register(email: str, **fields: object) -> str:
            response = await http.post(f"{actors}/actors", json=actor_body(email=email, **fields))
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        health = await register("gesundheitsamt@example.org", name="Gesundheitsamt", kind="public_agency")
        jobcenter = await register("jobcenter@example.org", name="Jobcenter", kind="public_agency", language="en")
        silent = await register("ki@example.org", name="KI", kind="public_agency", consent_to_notifications=False)
        family = await register("familienbuero@example.org", name="Familienbüro", kind="public_agency")
        await register("runder-tisch@example.org", name="Runder Tisch", kind="round_table")  # not in the team

        team = await http.put(
            f"{actors}/districts/IV/team", json={"members": [health, jobcenter, silent]}, headers=quarter_manager
        )
        assert team.status_code == 200, team.text
        await asyncio.sleep(2)  # the conferences service learns actors and team from events only

        body = conference_body(title="Kompetenzteam Borbeck", audience="team")
        response = await http.post(f"{conferences}/conferences", json=body)
        assert response.status_code == 201, response.text
        conference_id = response.json()["id"]

        async def sent(count: int) -> dict[str, Any] | None:
            detail: dict[str, Any] = (await http.get(f"{conferences}/conferences/{conference_id}")).json()
            return detail if detail["counts"]["sent"] == count else None

        detail = await eventually(lambda: sent(2), timeout=60)
        assert detail["audience"] == "team"
        assert {i["actor_id"] for i in detail["invitations"]} == {health, jobcenter}

        team = await http.put(
            f"{actors}/districts/IV/team",
            json={"members": [health, jobcenter, silent, family]},
            headers=quarter_manager,
        )
        assert team.status_code == 200, team.text
        detail = await eventually(lambda: sent(3), timeout=60)
        assert {i["actor_id"] for i in detail["invitations"]} == {health, jobcenter, family}

    await asyncio.sleep(2)  # anything duplicated or sent to others would arrive now
    mails = read_mails(maildir)
    recipients = sorted(m["To"].addresses[0].addr_spec for m in mails)
    assert recipients == ["familienbuero@example.org", "gesundheitsamt@example.org", "jobcenter@example.org"]
    assert all("Kompetenzteam Borbeck" in m["Subject"] for m in mails)
