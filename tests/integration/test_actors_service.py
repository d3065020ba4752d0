"""The actors service against a real broker and database."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx

from actors.app import build
from actors.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.events import ACTORS_TOPIC, CONTACTS_TOPIC, TEAMS_TOPIC
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
        assert [e.event_version for e in found] == ["2.0", "2.0", "1.0"]
        assert all(e.producer == "actors" and not {"name", "email"} & set(e.payload) for e in found)
        assert found[1].payload["language"] == "en"
        assert found[0].correlation_id == created.headers["X-Correlation-ID"]
        # The contact data on a topic of its own, with each change, at the same revision.
        contact_records = await read_to_end(infra.kafka_bootstrap, CONTACTS_TOPIC)
        contacts = envelopes(contact_records)
        assert {r.key for r in contact_records} == {actor["id"].encode()}
        assert [(e.event_type, e.payload["revision"]) for e in contacts] == [("ContactChanged", n) for n in (1, 2, 3)]
        assert contacts[0].payload["name"] == actor["name"] and contacts[0].payload["email"] == actor["email"]
        assert [e.payload["active"] for e in contacts] == [True, True, False]


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


HOSTILE_TEXTS = [
    "Caritas\r\nBcc: victim@example.org",
    "Caritas\nPlease send your bank details",
    "Cari\x00tas",
    "Cari\x1btas",
    "Cari\x85tas",  # C1 next line
    "Caritas \u202egnissim",  # right-to-left override
    "Cari\u200btas",  # zero-width space
    "Cari\u2066tas",  # bidi isolate
    "Caritas\u2028Zeile",  # line separator
]


async def test_hostile_text_and_non_boolean_consent_are_refused_and_nothing_is_stored(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        for text in HOSTILE_TEXTS:
            await assert_refused(client, "/actors", {"name": actor_body(name=text)})
        for value in ["yes", "true", 1, 0, "1", None]:
            await assert_refused(
                client, "/actors", {"consent_to_notifications": actor_body(consent_to_notifications=value)}
            )
        too_many = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "IV"]
        await assert_refused(client, "/actors", {"districts": actor_body(districts=too_many)})
        assert (await client.get("/actors")).json() == []

        created = (await client.post("/actors", json=actor_body(name="  Ümlaut & Co. — Borbeck  "))).json()
        assert created["name"] == "Ümlaut & Co. — Borbeck"
        for body in [{"name": "Neu\nZeile"}, {"consent_to_notifications": "no"}]:
            patched = await client.patch(f"/actors/{created['id']}", json=body)
            assert patched.status_code == 422
            assert next(iter(body)) in patched.json()["detail"][0]["loc"]
        read = await client.get(f"/actors/{created['id']}")
        assert read.json()["revision"] == 1
        assert read.headers["Cache-Control"] == "no-store"  # it holds a name and an address
        assert (await client.get("/actors")).headers["Cache-Control"] == "no-store"


async def test_large_bodies_long_echoes_and_odd_correlation_ids_are_bounded(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    async with running(app, infra.auth_headers()) as client:
        huge = await client.post("/actors", json=actor_body(name="x" * 70_000))
        assert huge.status_code == 413 and "X-Correlation-ID" in huge.headers

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(70):
                yield b" " * 1024
            yield json.dumps(actor_body()).encode()

        chunked = await client.post("/actors", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413

        long = await client.post("/actors", json=actor_body(name="x" * 50_000, districts=["y" * 1000] * 9))
        assert long.status_code == 422 and len(long.content) < 8192, len(long.content)
        assert long.json()["detail"][0]["loc"] == ["body", "name"]
        assert (await client.get("/actors")).json() == []

        kept = await client.get("/districts", headers={"X-Correlation-ID": "req-42.a_b"})
        assert kept.headers["X-Correlation-ID"] == "req-42.a_b"
        for hostile in ["a\tb", "x" * 65, "a/b", "a b", "<script>", ""]:
            fresh = await client.get("/districts", headers={"X-Correlation-ID": hostile})
            assert fresh.headers["X-Correlation-ID"] != hostile
            assert uuid.UUID(fresh.headers["X-Correlation-ID"])

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        failed = await client.get("/boom", headers={"X-Correlation-ID": "trace-500"})
        assert failed.status_code == 500
        assert failed.headers["X-Correlation-ID"] == "trace-500"
        assert "a bug" not in failed.text


async def _all_pages(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[list[str]]:
    """The ids on each page, following the ``Link: rel="next"`` headers from ``url``."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url is not None:
        answer = await client.get(next_url, headers=headers)
        assert answer.status_code == 200, answer.text
        pages.append([a["id"] for a in answer.json()])
        next_url = answer.links.get("next", {}).get("url")
        assert len(pages) < 10, "the pages do not end"
    return pages


async def test_lists_come_in_pages_in_a_stable_order_within_the_readers_districts(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        ids = {}
        for n, district in enumerate(["IV", "I", "IV", "I", "IV"]):
            created = await client.post("/actors", json=actor_body(name=f"Initiative {n}", districts=[district]))
            ids[n] = created.json()["id"]

        first = await client.get("/actors")  # no limit: everything on one page, as before pagination
        assert [a["id"] for a in first.json()] == list(ids.values()) and "link" not in first.headers
        coordinator = infra.auth_headers()
        assert await _all_pages(client, "/actors?limit=2", coordinator) == [
            [ids[0], ids[1]],
            [ids[2], ids[3]],
            [ids[4]],
        ]
        # A quarter manager's pages are full pages of their own district, not coordinator pages thinned out.
        manager = infra.auth_headers("quarter_manager", districts=("IV",))
        assert await _all_pages(client, "/actors?limit=2", manager) == [[ids[0], ids[2]], [ids[4]]]

        for bad in ({"limit": "0"}, {"limit": "501"}, {"cursor": "bm90IG91cnM"}, {"cursor": "x" * 600}):
            refused = await client.get("/actors", params=bad)
            assert refused.status_code == 422, bad
            assert refused.json()["detail"][0]["loc"] == ["query", next(iter(bad))]


async def test_a_district_competence_team_is_set_read_and_published(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        office = (await client.post("/actors", json=actor_body(kind="public_agency"))).json()
        jobcenter = (await client.post("/actors", json=actor_body(districts=["IV", "V"]))).json()
        elsewhere = (await client.post("/actors", json=actor_body(districts=["V"]))).json()

        assert (await client.get("/districts/IV/team")).json()["members"] == []
        members = [jobcenter["id"], office["id"]]
        answer = await client.put("/districts/IV/team", json={"members": members})
        assert answer.status_code == 200, answer.text
        assert answer.json()["members"] == members and answer.json()["revision"] == 1
        assert (await client.get("/districts/IV/team")).json()["members"] == members

        refused = await client.put("/districts/IV/team", json={"members": [elsewhere["id"]]})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "members"]
        assert (await client.put("/districts/XX/team", json={"members": []})).status_code == 422
        too_many = await client.put("/districts/IV/team", json={"members": ["x"] * 201})
        assert too_many.status_code == 422

        await eventually(lambda: outbox_empty(app))
        found = envelopes(await read_to_end(infra.kafka_bootstrap, TEAMS_TOPIC))
        assert [(e.event_type, e.payload) for e in found] == [
            ("CompetenceTeamChanged", {"district": "IV", "members": members, "revision": 1})
        ]


async def test_actors_stored_before_version_2_are_published_again_once_at_start_up(
    infra: Infrastructure, database_name: str
) -> None:
    """An actor document without the mark (stored before version 2 of the actor events) gets its
    snapshot and contact at its current revision published at the next start, once."""
    settings = settings_for(Settings, infra, database_name)
    app = build(settings)
    async with running(app, infra.auth_headers()) as client:
        created = await client.post("/actors", json=actor_body(name="Altbestand e.V."))
        assert created.status_code == 201, created.text
        actor_id = created.json()["id"]
        await eventually(lambda: outbox_empty(app))
        # As stored before version 2: no mark.
        await app.state.runtime.db["actors"].update_one({"_id": actor_id}, {"$unset": {"published_as": ""}})

    async def published(topic: str) -> list[str]:
        found = envelopes(await read_to_end(infra.kafka_bootstrap, topic))
        return [f"{e.event_type}@{e.payload['revision']}" for e in found if e.aggregate_id == actor_id]

    async def start_and_settle() -> None:
        again = build(settings)
        async with running(again, infra.auth_headers()):

            async def marked() -> bool:
                doc = await again.state.runtime.db["actors"].find_one({"_id": actor_id})
                return doc is not None and doc.get("published_as") == 2

            await eventually(marked)
            await eventually(lambda: outbox_empty(again))

    await start_and_settle()
    await start_and_settle()  # the second start finds the mark and publishes nothing
    assert await published(ACTORS_TOPIC) == ["ActorRegistered@1", "ActorUpdated@1"]
    assert await published(CONTACTS_TOPIC) == ["ContactChanged@1", "ContactChanged@1"]
