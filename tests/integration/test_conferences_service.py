"""The conferences service against a real broker and database: roster from actor events,
fan-out of invitations, delivery outcomes, and idempotency under redelivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from conferences.app import build
from conferences.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.events import (
    INVITATIONS_TOPIC,
    ActorDeactivated,
    ActorRegistered,
    ActorUpdated,
    InvitationFailed,
    InvitationSent,
)
from quartier_shared.outbox import pending_events
from tests.helpers import (
    conference_body,
    envelope_of,
    envelopes,
    eventually,
    publish,
    read_topic,
    running,
    settings_for,
)


def registered(
    district: list[str], consent: bool = True, revision: int = 1, actor_id: str | None = None
) -> ActorRegistered:
    return ActorRegistered(
        actor_id=actor_id or str(uuid.uuid4()),
        revision=revision,
        name="Testakteur",
        kind="church_parish",
        districts=district,
        email="akteur@example.org",
        language="de",
        consent_to_notifications=consent,
    )


async def test_fan_out_invites_every_invitable_actor_of_the_district_once(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    invited = [registered(["IV"]), registered(["III", "IV"])]
    no_consent = registered(["IV"], consent=False)
    other_district = registered(["I"])
    gone = registered(["IV"])
    later_no_consent = registered(["IV"])
    actor_events = [
        *(envelope_of(e) for e in [*invited, no_consent, other_district, gone, later_no_consent]),
        envelope_of(ActorDeactivated(actor_id=gone.actor_id, revision=2)),
        envelope_of(
            ActorUpdated(**{**later_no_consent.model_dump(), "revision": 2, "consent_to_notifications": False})
        ),
    ]
    async with running(app) as client:
        await publish(infra.kafka_bootstrap, actor_events)
        db = app.state.runtime.db

        async def roster_settled() -> bool:
            return (
                await db["roster"].count_documents({"revision": 2}) == 2 and await db["roster"].count_documents({}) == 6
            )

        await eventually(roster_settled)
        response = await client.post("/conferences", json=conference_body())
        assert response.status_code == 201, response.text
        conference_id = response.json()["id"]

        async def all_issued() -> dict[str, Any] | None:
            detail = (await client.get(f"/conferences/{conference_id}")).json()
            return detail if detail["counts"]["total"] == 2 else None

        detail = await eventually(all_issued)
        assert {i["actor_id"] for i in detail["invitations"]} == {a.actor_id for a in invited}
        assert detail["counts"] == {"pending": 2, "sent": 0, "failed": 0, "total": 2}

        records = await read_topic(infra.kafka_bootstrap, INVITATIONS_TOPIC, until=lambda r: len(r) >= 2)
        issued = envelopes(records, "InvitationIssued")
        assert {e.payload["actor_id"] for e in issued} == {a.actor_id for a in invited}
        assert all(e.payload["conference"]["venue"]["name"] == "Kulturzentrum Borbeck" for e in issued)
        assert all(e.correlation_id == response.headers["X-Correlation-ID"] for e in issued)

        # Delivery outcomes move invitations forward; a late failure never undoes a sent mail.
        first, second = detail["invitations"]
        now = datetime.now(UTC)
        sent = InvitationSent(
            invitation_id=first["id"],
            conference_id=conference_id,
            actor_id=first["actor_id"],
            message_id="<m@x>",
            sent_at=now,
        )
        failed = InvitationFailed(
            invitation_id=second["id"],
            conference_id=conference_id,
            actor_id=second["actor_id"],
            reason="SMTP 550",
            failed_at=now,
        )
        late_failure = InvitationFailed(
            invitation_id=first["id"],
            conference_id=conference_id,
            actor_id=first["actor_id"],
            reason="late",
            failed_at=now,
        )
        await publish(infra.kafka_bootstrap, [envelope_of(sent), envelope_of(failed), envelope_of(late_failure)])

        async def outcomes() -> dict[str, Any] | None:
            detail = (await client.get(f"/conferences/{conference_id}")).json()
            return detail if detail["counts"]["sent"] == 1 and detail["counts"]["failed"] == 1 else None

        detail = await eventually(outcomes)
        by_id = {i["id"]: i for i in detail["invitations"]}
        assert by_id[first["id"]]["status"] == "sent"
        assert by_id[second["id"]]["reason"] == "SMTP 550"

        # A later attempt that got through turns a failure into sent, even in the same batch.
        retried = InvitationSent(
            invitation_id=second["id"],
            conference_id=conference_id,
            actor_id=second["actor_id"],
            message_id="<m2@x>",
            sent_at=now,
        )
        await publish(infra.kafka_bootstrap, [envelope_of(retried), envelope_of(failed)])

        async def both_sent() -> dict[str, Any] | None:
            detail = (await client.get(f"/conferences/{conference_id}")).json()
            return detail if detail["counts"]["sent"] == 2 else None

        detail = await eventually(both_sent)
        assert {i["reason"] for i in detail["invitations"]} == {None}

        listed = (await client.get("/conferences", params={"district": "IV"})).json()
        assert [c["id"] for c in listed] == [conference_id]


async def test_the_same_events_delivered_three_times_have_one_effect(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    actor = registered(["VII"])
    async with running(app) as client:
        once = envelope_of(actor)
        await publish(infra.kafka_bootstrap, [once, once, once])
        db = app.state.runtime.db

        async def in_roster() -> bool:
            return await db["roster"].count_documents({"_id": actor.actor_id}) == 1

        await eventually(in_roster)
        response = await client.post("/conferences", json=conference_body(district="VII"))
        conference_id = response.json()["id"]
        scheduled = await read_topic(infra.kafka_bootstrap, "quartier.conferences", until=lambda r: len(r) >= 1)
        # The fan-out event itself redelivered twice more: still one invitation, one InvitationIssued.
        await publish(infra.kafka_bootstrap, envelopes(scheduled) * 2)
        records = await read_topic(infra.kafka_bootstrap, "quartier.conferences", until=lambda r: len(r) >= 3)
        assert len(records) == 3

        async def issued() -> int:
            return await db["invitations"].count_documents({"conference_id": conference_id})

        assert await eventually(issued) == 1
        # Let every redelivery be processed, then count what the outbox published.
        await eventually(lambda: _no_pending(db))
        invitations = await read_topic(infra.kafka_bootstrap, INVITATIONS_TOPIC, until=lambda r: len(r) >= 1)
        assert len(envelopes(invitations, "InvitationIssued")) == 1
        assert await db["invitations"].count_documents({}) == 1


async def _no_pending(db: object) -> bool:
    from pymongo.asynchronous.database import AsyncDatabase

    assert isinstance(db, AsyncDatabase)
    return await pending_events(db) == 0


async def test_late_joiner_is_invited_to_upcoming_conferences(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app) as client:
        response = await client.post("/conferences", json=conference_body(district="II"))
        conference_id = response.json()["id"]
        await read_topic(infra.kafka_bootstrap, "quartier.conferences", until=lambda r: len(r) >= 1)
        newcomer = registered(["II"])
        await publish(infra.kafka_bootstrap, [envelope_of(newcomer)])

        async def invited() -> list[Any] | None:
            detail = (await client.get(f"/conferences/{conference_id}")).json()
            return detail["invitations"] or None

        invitations = await eventually(invited)
        assert [i["actor_id"] for i in invitations] == [newcomer.actor_id]


async def test_bad_conferences_are_refused_naming_the_field(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app) as client:
        cases = {
            "district": conference_body(district="X"),
            "title": conference_body(title="  "),
            "ends_at": conference_body(ends_at="2031-03-04T16:00:00+01:00"),
            "starts_at": conference_body(starts_at="2020-03-04T17:00:00+01:00"),
        }
        for field, body in cases.items():
            response = await client.post("/conferences", json=body)
            assert response.status_code == 422, field
            assert field in response.json()["detail"][0]["loc"], (field, response.json())
        naive = await client.post("/conferences", json=conference_body(starts_at="2031-03-04T17:00:00"))
        assert naive.status_code == 422
        assert (await client.get("/conferences/unknown")).status_code == 404
        assert (await client.get("/conferences", params={"district": "XX"})).status_code == 422
