"""The actors service against a real broker and database."""

from __future__ import annotations

from actors.app import build
from actors.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.events import ACTORS_TOPIC
from tests.helpers import (
    actor_body,
    assert_refused,
    envelopes,
    eventually,
    outbox_empty,
    read_to_end,
    running,
    settings_for,
)


async def test_register_read_update_deactivate_and_their_events(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        created = await client.post("/actors", json=actor_body(districts=["IV", "iii"]))
        assert created.status_code == 201, created.text
        actor = created.json()
        assert actor["districts"] == ["IV", "III"]
        assert actor["active"] is True

        assert (await client.get(f"/actors/{actor['id']}")).json()["name"] == actor["name"]
        listed = (await client.get("/actors", params={"district": "III"})).json()
        assert [a["id"] for a in listed] == [actor["id"]]
        assert (await client.get("/actors", params={"district": "I"})).json() == []

        patched = await client.patch(f"/actors/{actor['id']}", json={"language": "en"})
        assert patched.status_code == 200
        assert patched.json()["language"] == "en" and patched.json()["revision"] == 2

        deleted = await client.delete(f"/actors/{actor['id']}")
        assert deleted.json()["active"] is False
        assert (await client.get("/actors", params={"district": "IV"})).json() == []
        again = await client.delete(f"/actors/{actor['id']}")
        assert again.json()["revision"] == 3  # deactivating twice changes nothing

        # Read what was relayed, all of it: reading until three events arrived would not see a fourth.
        await eventually(lambda: outbox_empty(app))
        records = await read_to_end(infra.kafka_bootstrap, ACTORS_TOPIC)
        found = envelopes(records)
        assert [e.event_type for e in found] == ["ActorRegistered", "ActorUpdated", "ActorDeactivated"]
        assert {r.key for r in records} == {actor["id"].encode()}
        assert all(e.producer == "actors" and e.event_version == "1.0" for e in found)
        assert found[1].payload["language"] == "en"
        assert found[0].correlation_id == created.headers["X-Correlation-ID"]


async def test_bad_input_names_the_field_and_unknown_ids_answer_404(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        cases = {
            "kind": actor_body(kind="wizard"),
            "districts": actor_body(districts=[]),
            "email": actor_body(email="not-an-address"),
            "language": actor_body(language="fr"),
            "name": actor_body(name="   "),
        }
        await assert_refused(client, "/actors", cases)
        unknown_district = await client.post("/actors", json=actor_body(districts=["IV", "XII"]))
        assert unknown_district.status_code == 422
        assert "XII" in unknown_district.json()["detail"][0]["msg"]
        assert (await client.patch("/actors/nope", json={"name": "Neu"})).status_code == 404
        assert (await client.patch("/actors/nope", json={"name": None})).status_code == 422
        assert (await client.get("/actors/nope")).status_code == 404
        assert (await client.delete("/actors/nope")).status_code == 404
        assert (await client.get("/actors", params={"district": "XX"})).status_code == 422


async def test_districts_catalogue(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        catalogue = (await client.get("/districts")).json()
        assert catalogue["city"] == "Essen"
        assert len(catalogue["districts"]) == 9
        assert sum(len(d["quarters"]) for d in catalogue["districts"]) == 50
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/health/live")).json() == {"status": "ok"}
