"""Changes, cancellation and reminders of a conference against a real broker and database: the
events on Kafka (one per invitation, in order with the invitations), the answer page after the
cancellation, a fan-out racing a cancellation, reminders fired with a fake clock (by answer, once
across two workers, overdue after a restart, none after the start, moved by a change of time) and
the coordinator's nudge with its window."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import OperationFailure

from conferences import handlers
from conferences.app import build
from conferences.commands import AnswerInvitation
from conferences.reminders import fire_due
from conferences.settings import Settings
from conferences.unit_of_work import MongoConferencesUnitOfWork, UnitOfWorkFactory
from quartier.embedded import Infrastructure
from quartier_shared import links
from quartier_shared.events import (
    ACTORS_TOPIC,
    CONFERENCES_TOPIC,
    DELIVERIES_TOPIC,
    INVITATIONS_TOPIC,
    Answer,
    Envelope,
    EventContext,
)
from tests.helpers import (
    CONFERENCE_DAY,
    actor_registered,
    caught_up,
    conference_body,
    envelope_of,
    envelopes,
    eventually,
    outbox_empty,
    publish,
    read_to_end,
    running,
    settings_for,
)
from tests.integration.test_conferences_service import detail, sent

GROUP = "conferences"
CONTEXT = EventContext("tests", "test-correlation")


def uow_factory(app: FastAPI) -> UnitOfWorkFactory:
    factory: UnitOfWorkFactory = app.state.runtime.unit_of_work(MongoConferencesUnitOfWork)
    return factory


async def settled(app: FastAPI, bootstrap: str) -> None:
    """Everything stored was relayed, and everything relayed was handled."""
    await eventually(lambda: outbox_empty(app))
    await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC, CONFERENCES_TOPIC, DELIVERIES_TOPIC))
    await eventually(lambda: outbox_empty(app))


async def invited(
    app: FastAPI, client: httpx.AsyncClient, bootstrap: str, count: int, body: dict[str, Any] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """``count`` actors of district IV, a conference, and their invitations once all are issued
    (``count`` 0: none are registered, and a conference that invites nobody)."""
    await publish(bootstrap, [envelope_of(actor_registered("IV")) for _ in range(count)])
    await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC))
    response = await client.post("/conferences", json=body or conference_body())
    assert response.status_code == 201, response.text
    conference_id = response.json()["id"]

    async def all_issued() -> tuple[list[dict[str, Any]]] | None:
        found = (await detail(client, conference_id))["invitations"]
        return (found,) if len(found) == count else None

    [found] = await eventually(all_issued)
    return conference_id, found


async def mark_sent(
    app: FastAPI, client: httpx.AsyncClient, bootstrap: str, conference_id: str, ids: list[str]
) -> None:
    invitations = (await detail(client, conference_id))["invitations"]
    await publish(bootstrap, [envelope_of(sent(i)) for i in invitations if i["id"] in ids])
    await eventually(lambda: caught_up(bootstrap, GROUP, DELIVERIES_TOPIC))


async def answer(app: FastAPI, invitation_id: str, kind: Answer) -> None:
    """As the answer page stores it (its own tests drive the form)."""
    command = AnswerInvitation(invitation_id, kind, 1, None, None, False, 0, None)
    await handlers.answer_invitation(command, CONTEXT, uow_factory=uow_factory(app))


def by_invitation(records: list[Envelope]) -> dict[str, list[Envelope]]:
    found: dict[str, list[Envelope]] = defaultdict(list)
    for e in records:
        found[e.payload["invitation_id"]].append(e)
    return found


async def test_a_change_tells_every_invitee_and_a_cancellation_ends_it(
    infra: Infrastructure, database_name: str, tmp_path: Path
) -> None:
    signing, verifying = links.generate_pair(tmp_path / "links")
    app = build(settings_for(Settings, infra, database_name, link_verify_key=str(verifying)))
    bootstrap = infra.kafka_bootstrap
    async with running(app, infra.auth_headers()) as client:
        conference_id, invitations = await invited(app, client, bootstrap, 3)
        accepted, declined, silent = (i["id"] for i in invitations)
        await mark_sent(app, client, bootstrap, conference_id, [accepted, declined, silent])
        await answer(app, accepted, "accepted")
        await answer(app, declined, "declined")
        path = f"/conferences/{conference_id}"

        # Checked as a new conference is, and against what is stored; 422 names the field.
        for field, body in {
            "ends_at": {"ends_at": f"{CONFERENCE_DAY}T16:00:00+01:00"},
            "starts_at": {"starts_at": "2020-03-04T17:00:00+01:00"},
            "title": {"title": None},
            "agenda": {"agenda": ["Begrüßung", "Kon\u202eferenz"]},
            "venue": {"venue": {"name": "Rathaus"}},
            "district": {"district": "I"},
        }.items():
            refused = await client.patch(path, json=body)
            assert refused.status_code == 422, (field, refused.text)
            assert field in refused.json()["detail"][0]["loc"], (field, refused.json())
        assert (await client.patch("/conferences/unknown", json={"title": "Neu"})).status_code == 404

        new_time = {"starts_at": f"{CONFERENCE_DAY}T18:00:00+01:00", "ends_at": f"{CONFERENCE_DAY}T21:00:00+01:00"}
        changed = await client.patch(path, json={**new_time, "title": "Integrationskonferenz Borbeck (neu)"})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["sequence"], changed.json()["status"]) == (1, "scheduled")
        await settled(app, bootstrap)
        [conference_changed] = envelopes(await read_to_end(bootstrap, CONFERENCES_TOPIC), "ConferenceChanged")
        assert conference_changed.payload["previous"]["title"] == "Integrationskonferenz Borbeck"
        assert conference_changed.payload["details"]["sequence"] == 1
        assert conference_changed.correlation_id == changed.headers["X-Correlation-ID"]
        updates = by_invitation(envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC), "InvitationUpdated"))
        assert {k: len(v) for k, v in updates.items()} == {accepted: 1, declined: 1, silent: 1}
        assert {k for k, [e] in updates.items() if e.payload["confirm"]} == {accepted}
        answers = {
            i["id"]: (i["answer"] or {}).get("answer") for i in (await detail(client, conference_id))["invitations"]
        }
        assert answers == {accepted: "accepted", declined: "declined", silent: None}

        # Cancelled: 200, sequence one higher; again: 200, the same, nothing raised again.
        bad_reason = await client.delete(path, params={"reason": "Raum\r\nBcc: x"})
        assert bad_reason.status_code == 422 and bad_reason.json()["detail"][0]["loc"] == ["query", "reason"]
        assert (await client.delete(path, params={"reason": "x" * 501})).status_code == 422
        cancelled = await client.delete(path, params={"reason": "Der Saal ist nicht verfügbar"})
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["sequence"]) == ("cancelled", 2)
        again = await client.delete(path)
        assert again.status_code == 200 and again.json() == cancelled.json()
        await settled(app, bootstrap)
        on_topic = envelopes(await read_to_end(bootstrap, CONFERENCES_TOPIC))
        assert [e.event_type for e in on_topic].count("ConferenceCancelled") == 1
        per_invitation = by_invitation(envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC)))
        assert {k: [e.event_type for e in v] for k, v in per_invitation.items()} == {
            i: ["InvitationIssued", "InvitationUpdated", "InvitationCancelled"] for i in (accepted, declined, silent)
        }
        assert per_invitation[silent][-1].payload["reason"] == "Der Saal ist nicht verfügbar"

        # The answer page says it is gone; nothing more may happen to it.
        key = links.load_private_key(str(signing))
        token = links.sign(silent, datetime.fromisoformat(cancelled.json()["ends_at"]), key)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as public:
            assert (await public.get(f"/rsvp/{token}")).status_code == 410
        assert (await client.patch(path, json={"title": "Noch einmal"})).status_code == 409
        assert (await client.post(f"{path}/reminders")).status_code == 409
        assert (await client.post(f"{path}/publish")).status_code == 409
        assert await app.state.runtime.db["reminders"].count_documents({"conference_id": conference_id}) == 0
        # Late joiners are not invited to it.
        await publish(bootstrap, [envelope_of(actor_registered("IV"))])
        await settled(app, bootstrap)
        assert len((await detail(client, conference_id))["invitations"]) == 3

        # Nothing after the start.
        other, _ = await invited(app, client, bootstrap, 0)
        past = datetime.now(UTC) - timedelta(minutes=5)
        await app.state.runtime.db["conferences"].update_one({"_id": other}, {"$set": {"starts_at": past}})
        assert (await client.patch(f"/conferences/{other}", json={"title": "Neu"})).status_code == 409
        assert (await client.delete(f"/conferences/{other}")).status_code == 409


async def test_a_batch_overlapping_the_cancellation_conflicts_and_then_issues_nothing(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        conference_id, _ = await invited(app, client, infra.kafka_bootstrap, 0)
        async with uow_factory(app)(CONTEXT) as uow:
            before = await uow.conferences.get(conference_id)  # the batch's snapshot: scheduled
            assert before is not None and before.is_upcoming()
            assert (await client.delete(f"/conferences/{conference_id}")).status_code == 200
            with pytest.raises(OperationFailure) as conflict:
                await handlers._issue(uow, before, ["late-actor"])
                await uow.commit()
            assert conflict.value.has_error_label("TransientTransactionError")
        # Run again (as the consumer does with a transient error), the batch sees the cancellation.
        async with uow_factory(app)(CONTEXT) as uow:
            now = await uow.conferences.get(conference_id)
            assert now is not None and not now.is_upcoming()
        assert await app.state.runtime.db["invitations"].count_documents({"conference_id": conference_id}) == 0


async def test_nobody_is_invited_after_the_cancellation_of_a_fan_out_in_progress(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name, fanout_batch_size=5))
    bootstrap = infra.kafka_bootstrap
    count = 60
    async with running(app, infra.auth_headers()) as client:
        await publish(bootstrap, [envelope_of(actor_registered("IV")) for _ in range(count)])
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC))
        conference_id = (await client.post("/conferences", json=conference_body())).json()["id"]

        async def some_issued() -> int:
            return await app.state.runtime.db["invitations"].count_documents({"conference_id": conference_id})

        await eventually(some_issued, interval=0.01)
        cancelled = await client.delete(f"/conferences/{conference_id}")
        assert cancelled.status_code == 200
        await settled(app, bootstrap)
        stored = await some_issued()
        per_invitation = by_invitation(envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC)))
        assert len(per_invitation) == stored
        # Each invitation issued was cancelled after it, once; none was issued after its cancellation.
        assert {tuple(e.event_type for e in v) for v in per_invitation.values()} == {
            ("InvitationIssued", "InvitationCancelled")
        }
        print(f"RACE issued {stored} of {count} before the cancellation")


async def test_reminders_fire_by_answer_once_when_due_moved_by_a_change_and_never_after_the_start(
    infra: Infrastructure, database_name: str
) -> None:
    settings = settings_for(Settings, infra, database_name)
    app = build(settings)
    bootstrap = infra.kafka_bootstrap
    async with running(app, infra.auth_headers()) as client:
        conference_id, invitations = await invited(app, client, bootstrap, 5)
        silent, accepted, tentative, declined, unsent = (i["id"] for i in invitations)
        await mark_sent(app, client, bootstrap, conference_id, [silent, accepted, tentative, declined])
        for invitation_id, kind in ((accepted, "accepted"), (tentative, "tentative"), (declined, "declined")):
            await answer(app, invitation_id, kind)  # type: ignore[arg-type]
        reminders = app.state.runtime.db["reminders"]
        start = datetime.fromisoformat(f"{CONFERENCE_DAY}T17:00:00+01:00")
        stored = {d["name"]: d["due_at"] async for d in reminders.find({"conference_id": conference_id})}
        assert stored == {"P7D": start - timedelta(days=7), "P1D": start - timedelta(days=1)}

        firing = app.state.reminders
        due = start - timedelta(days=7)
        assert await fire_due(firing, due - timedelta(seconds=1)) == 0
        # Two instances look at the same moment: the reminder fires once.
        fired = await asyncio.gather(fire_due(firing, due), fire_due(replace(firing, owner="instance-2"), due))
        assert sorted(fired) == [0, 1]
        await settled(app, bootstrap)
        reminded = by_invitation(envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC), "InvitationReminded"))
        assert {k: [(e.payload["reminder"], e.payload["reminder_id"]) for e in v] for k, v in reminded.items()} == {
            silent: [("please_answer", "P7D")],
            accepted: [("see_you", "P7D")],
            tentative: [("see_you", "P7D")],
        }
        assert unsent not in reminded and declined not in reminded
        assert await fire_due(firing, due + timedelta(hours=1)) == 0

        # An hour later: the reminders move with it.
        moved = {"starts_at": f"{CONFERENCE_DAY}T18:00:00+01:00", "ends_at": f"{CONFERENCE_DAY}T21:00:00+01:00"}
        assert (await client.patch(f"/conferences/{conference_id}", json=moved)).status_code == 200
        new_start = start + timedelta(hours=1)
        stored = {d["name"]: d["due_at"] async for d in reminders.find({"conference_id": conference_id})}
        assert stored == {"P7D": new_start - timedelta(days=7), "P1D": new_start - timedelta(days=1)}

    # Down over both due times; back two hours before the start, another instance fires both, once.
    restarted = build(settings)
    async with running(restarted, infra.auth_headers()):
        back = new_start - timedelta(hours=2)
        assert await fire_due(restarted.state.reminders, back) == 2
        assert await fire_due(restarted.state.reminders, back) == 0
        await settled(restarted, bootstrap)
        reminded = by_invitation(envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC), "InvitationReminded"))
        assert sorted(len(v) for v in reminded.values()) == [3, 3, 3]
        assert {e.payload["conference"]["sequence"] for v in reminded.values() for e in v[1:]} == {1}


async def test_no_reminder_after_the_start_and_none_past_at_publishing(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        soon = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
        body = conference_body(starts_at=soon.isoformat(), ends_at=(soon + timedelta(hours=2)).isoformat(), draft=True)
        conference_id, _ = await invited(app, client, infra.kafka_bootstrap, 0, body)
        reminders = app.state.runtime.db["reminders"]
        assert await reminders.count_documents({}) == 0  # a draft has none
        # A draft may be changed: its ConferenceChanged, nobody to tell, still no reminders.
        changed = await client.patch(f"/conferences/{conference_id}", json={"title": "Entwurf, geändert"})
        assert (changed.status_code, changed.json()["status"], changed.json()["sequence"]) == (200, "draft", 1)
        assert await reminders.count_documents({}) == 0
        assert (await client.post(f"/conferences/{conference_id}/publish")).status_code == 200
        assert [d["name"] async for d in reminders.find({"conference_id": conference_id})] == ["P1D"]
        # The service was down until after the start: the reminder is dropped, nothing sent.
        assert await fire_due(app.state.reminders, soon + timedelta(minutes=1)) == 1
        assert await reminders.count_documents({}) == 0
        await settled(app, infra.kafka_bootstrap)
        assert envelopes(await read_to_end(infra.kafka_bootstrap, INVITATIONS_TOPIC), "InvitationReminded") == []
        on_topic = envelopes(await read_to_end(infra.kafka_bootstrap, CONFERENCES_TOPIC))
        assert [e.event_type for e in on_topic] == ["ConferenceDrafted", "ConferenceChanged", "ConferenceScheduled"]
        assert on_topic[-1].payload["details"]["title"] == "Entwurf, geändert"


async def test_a_nudge_reminds_those_without_an_answer_now_and_once_an_hour(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    bootstrap = infra.kafka_bootstrap
    async with running(app, infra.auth_headers()) as client:
        conference_id, invitations = await invited(app, client, bootstrap, 2)
        silent, accepted = (i["id"] for i in invitations)
        await mark_sent(app, client, bootstrap, conference_id, [silent, accepted])
        await answer(app, accepted, "accepted")
        path = f"/conferences/{conference_id}/reminders"
        nudged = await client.post(path)
        assert nudged.status_code == 202, nudged.text
        reminder_id = nudged.json()["reminder_id"]
        assert reminder_id.startswith("nudge-") and reminder_id.endswith("Z")
        too_soon = await client.post(path)
        assert too_soon.status_code == 429
        assert 3500 <= int(too_soon.headers["Retry-After"]) <= 3600
        # The service's own worker fires it now (real clock), to the one without an answer only.

        async def reminded() -> list[Envelope] | None:
            await eventually(lambda: outbox_empty(app))
            found = envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC), "InvitationReminded")
            return found or None

        [event] = await eventually(reminded)
        assert (event.payload["invitation_id"], event.payload["reminder"]) == (silent, "please_answer")
        assert event.payload["reminder_id"] == reminder_id
        assert (await client.post("/conferences/unknown/reminders")).status_code == 404
        draft = (await client.post("/conferences", json=conference_body(draft=True))).json()["id"]
        assert (await client.post(f"/conferences/{draft}/reminders")).status_code == 409


async def test_invitations_stored_before_sequences_were_recorded_are_told_of_a_change(
    infra: Infrastructure, database_name: str
) -> None:
    settings = settings_for(Settings, infra, database_name)
    app = build(settings)
    bootstrap = infra.kafka_bootstrap
    async with running(app, infra.auth_headers()) as client:
        conference_id, [invitation] = await invited(app, client, bootstrap, 1)
        await app.state.runtime.db["invitations"].update_many({}, {"$unset": {"sequence": ""}})
    restarted = build(settings)  # as the service starts after the upgrade
    async with running(restarted, infra.auth_headers()) as client:
        assert (await client.patch(f"/conferences/{conference_id}", json={"title": "Neu"})).status_code == 200

        async def told() -> list[Envelope] | None:
            await eventually(lambda: outbox_empty(restarted))
            return envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC), "InvitationUpdated") or None

        [update] = await eventually(told)
        assert update.payload["invitation_id"] == invitation["id"]
