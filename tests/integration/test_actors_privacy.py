"""Personal data in the actors service against a real broker and database: consent records, the
audit log, the export and the erasure (issue 12, the actors service's part)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import conferences.app
import conferences.settings
from actors.app import build
from actors.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.events import (
    ACTORS_TOPIC,
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    ActorErasureConfirmed,
)
from tests.helpers import (
    actor_body,
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

NAME = "Flüchtlingshilfe Katernberg e.V."
EMAIL = "vorstand@fluechtlingshilfe-katernberg.example.org"


async def test_consent_is_recorded_with_its_history_and_a_new_address_withdraws_it(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name, consent_wording_version="2026-10"))
    manager = infra.auth_headers("quarter_manager", districts=("IV",), subject="subject-qm-iv")
    async with running(app, manager) as client:
        plain = (await client.post("/actors", json=actor_body())).json()  # the boolean alone, as before
        assert plain["consent_to_notifications"] is True
        assert {k: plain["consent"][k] for k in ("given", "basis", "wording_version", "by", "reason")} == {
            "given": True,
            "basis": "consent",
            "wording_version": "2026-10",
            "by": "subject-qm-iv",
            "reason": None,
        }
        body = actor_body(consent={"given": True, "basis": "public_task", "wording_version": "2026-09"})
        del body["consent_to_notifications"]
        created = await client.post("/actors", json=body)
        assert created.status_code == 201, created.text
        actor = created.json()
        assert actor["consent_to_notifications"] is True and actor["consent"]["basis"] == "public_task"

        refused = {
            "consent": actor_body(consent={"given": False, "basis": "consent"}),  # contradicts the boolean
            "given": actor_body(consent={"given": "yes", "basis": "consent"}),
            "basis": actor_body(consent={"given": True, "basis": "legitimate_interest"}),
            "wording_version": actor_body(consent={"given": True, "basis": "consent", "wording_version": "a b"}),
            "by": actor_body(consent={"given": True, "basis": "consent", "by": "someone else"}),
        }
        for field, bad in refused.items():
            answer = await client.post("/actors", json=bad)
            assert answer.status_code == 422 and field in answer.json()["detail"][0]["loc"], (field, answer.text)
        neither = actor_body()
        del neither["consent_to_notifications"]
        answer = await client.post("/actors", json=neither)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "consent_to_notifications"]

        moved = await client.patch(f"/actors/{actor['id']}", json={"email": "neu@example.org"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["consent_to_notifications"] is False
        assert (
            moved.json()["consent"]["reason"] == "e-mail changed" and moved.json()["consent"]["by"] == "subject-qm-iv"
        )
        again = await client.patch(
            f"/actors/{actor['id']}",
            json={"email": "neuer@example.org", "consent": {"given": True, "basis": "consent"}},
        )
        assert again.json()["consent_to_notifications"] is True
        withdrawn = await client.patch(f"/actors/{actor['id']}", json={"consent_to_notifications": False})
        read = (await client.get(f"/actors/{actor['id']}")).json()
        assert read["consent_history"] == withdrawn.json()["consent_history"]  # as shown, so stored
        assert [(r["given"], r["basis"], r["wording_version"], r["reason"]) for r in read["consent_history"]] == [
            (True, "public_task", "2026-09", None),
            (False, "public_task", "2026-09", "e-mail changed"),
            (True, "consent", "2026-10", None),
            (False, "consent", "2026-10", None),
        ]
        assert read["consent"] == read["consent_history"][-1] and read["revision"] == 4

        # the events still carry the boolean, derived from the current record: the actor events
        # and the contact events alike
        await eventually(lambda: outbox_empty(app))
        for topic in (ACTORS_TOPIC, CONTACTS_TOPIC):
            found = [
                e for e in envelopes(await read_to_end(infra.kafka_bootstrap, topic)) if e.aggregate_id == actor["id"]
            ]
            assert [e.payload["consent_to_notifications"] for e in found] == [True, False, True, False], topic


async def test_reads_are_audited_and_the_export_holds_entry_consent_history_and_audit(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    manager = infra.auth_headers("quarter_manager", districts=("IV",), subject="subject-qm-iv")
    officer = infra.auth_headers("data_protection", subject="subject-dpo")
    async with running(app, manager) as client:
        actor = (await client.post("/actors", json=actor_body(name=NAME, email=EMAIL))).json()
        other = (await client.post("/actors", json=actor_body())).json()
        await client.get(f"/actors/{actor['id']}")
        await client.get("/actors", params={"district": "IV"})
        await client.get("/actors", params={"limit": 1})  # one page: only the actor on it

        audit = await client.get(f"/actors/{actor['id']}/audit", headers=officer)
        assert audit.status_code == 200, audit.text
        assert [(e["action"], e["by"], e["actor_id"]) for e in audit.json()] == [
            ("read", "subject-qm-iv", actor["id"]),
            ("list", "subject-qm-iv", actor["id"]),
            ("list", "subject-qm-iv", actor["id"]),
        ]
        assert NAME not in audit.text and EMAIL not in audit.text
        others = (await client.get(f"/actors/{other['id']}/audit", headers=officer)).json()
        assert [e["action"] for e in others] == ["list"]
        first = await client.get(f"/actors/{actor['id']}/audit?limit=2", headers=officer)
        assert len(first.json()) == 2 and "next" in first.links
        assert (await client.get(f"/actors/{actor['id']}/audit")).status_code == 403  # the manager
        assert (await client.get("/actors/nope/audit", headers=officer)).status_code == 404

        exported = await client.get(f"/actors/{actor['id']}/export", headers=officer)
        assert exported.status_code == 200, exported.text
        assert exported.headers["Cache-Control"] == "no-store"
        document: dict[str, Any] = exported.json()
        assert document["format"] == "quartier-export/1" and document["actor_id"] == actor["id"]
        assert set(document) == {"format", "actor_id", "exported_at", "actors"}  # the others' parts go beside
        part = document["actors"]
        assert part["registry_entry"]["name"] == NAME and part["registry_entry"]["email"] == EMAIL
        assert [r["given"] for r in part["consent_history"]] == [True]
        assert [e["action"] for e in part["audit"]] == ["read", "list", "list", "export"]
        assert part["erasure"] is None


async def test_erasure_leaves_no_name_or_address_in_the_database_and_raises_an_event_without_them(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    officer = infra.auth_headers("data_protection", subject="subject-dpo")
    async with running(app, infra.auth_headers()) as client:
        actor = (await client.post("/actors", json=actor_body(name=NAME, email=EMAIL, districts=["IV", "V"]))).json()
        await client.patch(f"/actors/{actor['id']}", json={"language": "en"})
        await client.get(f"/actors/{actor['id']}")
        await eventually(lambda: outbox_empty(app))
        assert (await client.get(f"/actors/{actor['id']}/erasure", headers=officer)).status_code == 404

        erased = await client.post(f"/actors/{actor['id']}/erasure", headers=officer)
        assert erased.status_code == 200, erased.text
        state = erased.json()
        assert state["requested_by"] == "subject-dpo" and state["complete"] is False
        assert [(s["service"], s["status"]) for s in state["services"]] == [
            ("actors", "finished"),
            ("conferences", "pending"),
            ("notifications", "pending"),
        ]
        again = await client.post(f"/actors/{actor['id']}/erasure", headers=officer)
        assert again.json() == state  # idempotent

        read = (await client.get(f"/actors/{actor['id']}")).json()
        assert (read["name"], read["email"], read["active"], read["consent_to_notifications"]) == (
            "[gelöscht]",
            "",
            False,
            False,
        )
        assert (read["kind"], read["districts"], read["revision"]) == (actor["kind"], ["IV", "V"], 3)
        assert read["erased_at"] is not None
        for change in ({"name": "Wieder da"}, {"consent_to_notifications": True}, {"email": EMAIL}):
            refused = await client.patch(f"/actors/{actor['id']}", json=change)
            assert refused.status_code == 409, (change, refused.text)
        assert (await client.delete(f"/actors/{actor['id']}")).json()["revision"] == 3  # nothing to deactivate

        # every document of every collection of the actors database
        await eventually(lambda: outbox_empty(app))
        db = app.state.runtime.db
        everything = {name: [doc async for doc in db[name].find({})] for name in await db.list_collection_names()}
        assert {"actors", "audit", "erasures"} <= set(everything)
        dumped = json.dumps(everything, default=str, ensure_ascii=False)
        assert NAME not in dumped and EMAIL not in dumped
        assert EMAIL.split("@")[0] not in dumped

        # the event names the actor by id only, as every actor event does; the contact data was on
        # the contact topic, where a tombstone now follows it (and on its dead letters, in case)
        for topic in (CONTACTS_TOPIC, CONTACTS_DEAD_LETTER_TOPIC):
            last = [r for r in await read_to_end(infra.kafka_bootstrap, topic) if r.key == actor["id"].encode()][-1]
            assert last.value is None, topic
        found = [
            e
            for e in envelopes(await read_to_end(infra.kafka_bootstrap, ACTORS_TOPIC))
            if e.aggregate_id == actor["id"]
        ]
        assert [e.event_type for e in found] == ["ActorRegistered", "ActorUpdated", "ActorErased"]
        assert found[-1].payload == {"actor_id": actor["id"], "revision": 3}
        assert found[-1].initiated_by == "subject-dpo"
        assert NAME not in found[-1].model_dump_json() and EMAIL not in found[-1].model_dump_json()

        # the other services confirm; a repeated confirmation keeps the first time
        at = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
        confirmations = [
            ActorErasureConfirmed(actor_id=actor["id"], service="conferences", erased_at=at),
            ActorErasureConfirmed(actor_id=actor["id"], service="conferences", erased_at=datetime.now(UTC)),
            ActorErasureConfirmed(actor_id=actor["id"], service="notifications", erased_at=at),
        ]
        await publish(infra.kafka_bootstrap, [envelope_of(c) for c in confirmations])

        async def complete() -> dict[str, Any] | None:
            answer = (await client.get(f"/actors/{actor['id']}/erasure", headers=officer)).json()
            return answer if answer["complete"] else None

        done = await eventually(complete)
        finished = {s["service"]: s["finished_at"] for s in done["services"]}
        assert finished["conferences"] == finished["notifications"] == at.isoformat().replace("+00:00", "Z")

        export = (await client.get(f"/actors/{actor['id']}/export", headers=officer)).json()
        assert export["actors"]["erasure"]["complete"] is True
        assert [e["action"] for e in export["actors"]["audit"]] == ["read", "erasure", "erasure", "read", "export"]


async def test_an_erased_actor_is_not_invited_by_the_conferences_service(
    infra: Infrastructure, database_name: str
) -> None:
    """Conferences does not erase its roster entry yet (a later step), but takes ``ActorErased``
    as a deactivation: the erased actor is not invited."""
    actors_app = build(settings_for(Settings, infra, f"{database_name}_a"))
    conferences_app = conferences.app.build(settings_for(conferences.settings.Settings, infra, f"{database_name}_c"))
    officer = infra.auth_headers("data_protection", subject="subject-dpo")
    async with (
        running(actors_app, infra.auth_headers()) as actors_client,
        running(conferences_app, infra.auth_headers()) as conferences_client,
    ):
        erased = (await actors_client.post("/actors", json=actor_body(name=NAME, email=EMAIL))).json()
        kept = (await actors_client.post("/actors", json=actor_body())).json()
        assert (await actors_client.post(f"/actors/{erased['id']}/erasure", headers=officer)).status_code == 200
        await eventually(lambda: outbox_empty(actors_app))
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "conferences", ACTORS_TOPIC))

        created = await conferences_client.post("/conferences", json=conference_body())
        assert created.status_code == 201, created.text

        async def issued() -> list[str] | None:
            found = (await conferences_client.get(f"/conferences/{created.json()['id']}")).json()
            return [i["actor_id"] for i in found["invitations"]] or None

        await eventually(issued)
        await eventually(lambda: outbox_empty(conferences_app))  # the fan-out is done
        assert await issued() == [kept["id"]]
