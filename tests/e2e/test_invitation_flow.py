"""End to end: register actors, schedule a conference, and find exactly the expected mails."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from icalendar import Calendar

from quartier.processes import ServiceProcesses
from tests.helpers import actor_body, conference_body, eventually, read_mails


async def test_a_conference_invites_each_consenting_active_actor_of_its_district_once(
    services: ServiceProcesses, smtp_sink: tuple[int, Path]
) -> None:
    _, maildir = smtp_sink
    actors, conferences = services.urls["actors"], services.urls["conferences"]
    async with httpx.AsyncClient(timeout=10, headers=services.infra.auth_headers()) as http:

        async def register(**fields: object) -> dict[str, Any]:
            response = await http.post(f"{actors}/actors", json=actor_body(**fields))
            assert response.status_code == 201, response.text
            return response.json()

        expected = {
            "borbeck@caritas.example.org": await register(),
            "frintrop@example.org": await register(
                name="Runder Tisch Frintrop", kind="round_table", email="frintrop@example.org", language="en"
            ),
            "west@example.org": await register(
                name="Ev. Gemeinde Essen-West", kind="church_parish", districts=["III", "IV"], email="west@example.org"
            ),
        }
        await register(name="Ohne Einwilligung", email="no-consent@example.org", consent_to_notifications=False)
        await register(name="Nur Altendorf", districts=["III"], email="altendorf@example.org")
        gone = await register(name="Aufgelöster Verein", email="gone@example.org")
        assert (await http.delete(f"{actors}/actors/{gone['id']}")).status_code == 200
        withdrawn = await register(name="Zurückgezogen", email="withdrawn@example.org")
        changed = await http.patch(f"{actors}/actors/{withdrawn['id']}", json={"consent_to_notifications": False})
        assert changed.status_code == 200

        # The conferences service learns about actors from events only: give them a moment to arrive.
        await asyncio.sleep(2)
        correlation_id = "e2e-correlation-4711"
        response = await http.post(
            f"{conferences}/conferences", json=conference_body(), headers={"X-Correlation-ID": correlation_id}
        )
        assert response.status_code == 201, response.text
        conference_id = response.json()["id"]

        async def all_sent() -> dict[str, Any] | None:
            detail = (await http.get(f"{conferences}/conferences/{conference_id}")).json()
            return detail if detail["counts"]["sent"] == len(expected) else None

        detail = await eventually(all_sent, timeout=60)
        statuses = {k: detail["counts"][k] for k in ("pending", "sent", "failed", "total")}
        assert statuses == {"pending": 0, "sent": 3, "failed": 0, "total": 3}
        assert detail["counts"]["no_answer"] == 3 and detail["counts"]["accepted"] == 0
        assert {i["actor_id"] for i in detail["invitations"]} == {a["id"] for a in expected.values()}

    await asyncio.sleep(2)  # anything duplicated would arrive now
    mails = read_mails(maildir)
    recipients = sorted(m["To"].addresses[0].addr_spec for m in mails)
    assert recipients == sorted(expected)
    uids = set()
    for mail in mails:
        calendar_part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
        calendar = Calendar.from_ical(bytes(calendar_part.get_payload(decode=True)))
        assert calendar["METHOD"] == "REQUEST"
        event = calendar.walk("VEVENT")[0]
        assert str(event["SUMMARY"]) == "Integrationskonferenz Borbeck"
        uids.add(str(event["UID"]))
    assert len(uids) == 1  # one stable UID for the conference
    english = next(m for m in mails if m["To"].addresses[0].addr_spec == "frintrop@example.org")
    assert english["Subject"].startswith("Invitation:")

    # The coordinator's request id travels through Kafka into every service's logs.
    logs = {
        name: [json.loads(line) for line in services.log(name, chars=None).splitlines() if line.startswith("{")]
        for name in ("conferences", "notifications")
    }
    issued = [r for r in logs["conferences"] if r["event"] == "invitations_issued"]
    sent = [r for r in logs["notifications"] if r["event"] == "invitation_sent"]
    assert [r["correlation_id"] for r in issued] == [correlation_id]
    assert len(sent) == 3 and {r["correlation_id"] for r in sent} == {correlation_id}
    assert all(r["service"] == "notifications" and r["event_type"] == "InvitationIssued" for r in sent)
    # No personal data in any log line.
    everything = "".join(services.log(name, chars=None) for name in services.instances)
    assert "@example.org" not in everything and "Caritas" not in everything

    # Metrics say the same as the mailbox.
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = {name: (await http.get(f"{url}/metrics")).text for name, url in services.urls.items()}
    # Each consenting actor registered gets its Art. 14 notice too (the deleted and the withdrawn
    # one may have had theirs before): the metric counts every mail the sink took.
    notices = [m for m in read_mails(maildir, notices=True) if str(m["Message-ID"]).startswith("<notice-")]
    assert {"borbeck@caritas.example.org", "frintrop@example.org", "west@example.org", "altendorf@example.org"} <= {
        m["To"].addresses[0].addr_spec for m in notices
    }
    assert f'quartier_mails_total{{outcome="sent"}} {3 + len(notices)}.0' in metrics["notifications"]
    assert 'quartier_events_published_total{event_type="InvitationIssued"} 3.0' in metrics["conferences"]
    assert 'quartier_events_published_total{event_type="ActorRegistered"} 7.0' in metrics["actors"]
    assert 'quartier_events_consumed_total{event_type="InvitationSent"} 3.0' in metrics["conferences"]
    assert "quartier_outbox_backlog 0.0" in metrics["actors"]
    assert "quartier_consumer_lag{topic=" in metrics["notifications"]
