"""The CSV import and export of the actors service (``POST /actors/import``,
``GET /actors/import/template``, ``GET /actors/export.csv``) against a real broker and database:
dry run, commit through the same handler as ``POST /actors``, an idempotent second import,
Excel's Windows-1252 with ``;``, a quarter manager's rows checked per district, and the bounds."""

from __future__ import annotations

import csv
import io

from actors import csv_rows
from actors.app import build
from actors.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.events import ACTORS_TOPIC
from tests.helpers import envelopes, eventually, outbox_empty, read_to_end, running, settings_for

HEADER = "name;kind;districts;email;language;consent\r\n"
FILE = (
    HEADER
    + "Runder Tisch Frohnhausen;round_table;III;frohnhausen@runder-tisch.example.org;de;ja\r\n"
    + "Moscheegemeinde Altendorf;migrant_organisation;III IV;altendorf@moschee.example.org;en;nein\r\n"
    + ";round_table;III;leer@example.org;de;ja\r\n"  # no name
    + "Kirchengemeinde Borbeck;church_parish;XI;borbeck@kirche.example.org;de;ja\r\n"  # no district XI
    + "Verein Überall;other;IV;kein-at-zeichen;de;ja\r\n"  # not an address
    + "Zweimal;other;IV;frohnhausen@runder-tisch.example.org;de;ja\r\n"  # the first row's address again
)


async def test_dry_run_commit_and_a_second_import(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, headers=infra.auth_headers("coordinator", subject="subject-coordinator")) as client:
        template = await client.get("/actors/import/template")
        assert template.status_code == 200 and template.headers["content-type"].startswith("text/csv")
        assert template.content.decode("utf-8-sig").splitlines()[0] == ";".join(csv_rows.HEADER)

        dry = await client.post("/actors/import?dry_run=true", content=FILE.encode("cp1252"))
        assert dry.status_code == 200, dry.text
        answer = dry.json()
        assert answer["dry_run"] is True
        assert [r["status"] for r in answer["rows"]] == ["valid", "valid", "invalid", "invalid", "invalid", "invalid"]
        assert [r["line"] for r in answer["rows"]] == [2, 3, 4, 5, 6, 7]
        assert [[e["field"] for e in r["errors"]] for r in answer["rows"][2:]] == [
            ["name"],
            ["districts"],
            ["email"],
            ["email"],
        ]
        assert answer["rows"][4]["values"]["name"] == "Verein Überall"  # Windows-1252 read as such
        assert (await client.get("/actors")).json() == []  # a dry run stores nothing

        done = await client.post("/actors/import", content=FILE.encode("cp1252"))
        assert done.json()["counts"] == {"valid": 0, "invalid": 4, "exists": 0, "created": 2}
        created = {r["actor_id"] for r in done.json()["rows"] if r["status"] == "created"}
        listed = (await client.get("/actors")).json()
        assert {a["id"] for a in listed} == created
        altendorf = next(a for a in listed if a["name"] == "Moscheegemeinde Altendorf")
        assert altendorf["districts"] == ["III", "IV"] and altendorf["language"] == "en"
        # the same handler as POST /actors: a consent record by the caller, and ActorRegistered
        frohnhausen = next(a for a in listed if a["name"] == "Runder Tisch Frohnhausen")
        assert frohnhausen["consent"]["given"] is True and frohnhausen["consent"]["by"] == "subject-coordinator"
        assert altendorf["consent"]["given"] is False
        await eventually(lambda: outbox_empty(app))
        registered = envelopes(await read_to_end(infra.kafka_bootstrap, ACTORS_TOPIC), "ActorRegistered")
        assert {e.aggregate_id for e in registered} == created

        # the same file again (UTF-8 now, addresses in other case): nothing twice
        shouted = FILE.replace("frohnhausen@runder-tisch", "Frohnhausen@Runder-Tisch").replace(
            "altendorf@", "ALTENDORF@"
        )
        again = await client.post("/actors/import", content=shouted.encode())
        assert again.status_code == 200, again.text
        assert again.json()["counts"]["created"] == 0 and again.json()["counts"]["exists"] == 2
        assert len((await client.get("/actors")).json()) == 2

        # export: the current filter, formula-safe
        await client.post(
            "/actors",
            json={
                "name": "=HYPERLINK(1)",
                "kind": "other",
                "districts": ["IV"],
                "email": "formel@example.org",
                "consent_to_notifications": True,
            },
        )
        exported = await client.get("/actors/export.csv?district=IV")
        assert exported.status_code == 200 and exported.headers["cache-control"] == "no-store"
        rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig")), delimiter=";"))
        assert rows[0] == ["id", *csv_rows.HEADER, "active"]
        assert sorted(r[1] for r in rows[1:]) == ["'=HYPERLINK(1)", "Moscheegemeinde Altendorf"]
        only_round_tables = await client.get("/actors/export.csv?kind=round_table")
        assert len(only_round_tables.content.decode("utf-8-sig").splitlines()) == 2
        assert [a["kind"] for a in (await client.get("/actors?kind=round_table")).json()] == ["round_table"]
        # the search: name or address, any case, the text taken literally
        found = await client.get("/actors", params={"q": "MOSCHEE"})
        assert [a["name"] for a in found.json()] == ["Moscheegemeinde Altendorf"]
        assert [a["name"] for a in (await client.get("/actors?q=runder-tisch.example")).json()] == [
            "Runder Tisch Frohnhausen"
        ]
        assert (await client.get("/actors", params={"q": ".*"})).json() == []
        assert (await client.get("/actors", params={"q": "x" * 101})).status_code == 422
        searched = await client.get("/actors/export.csv", params={"q": "hyperlink"})
        assert len(searched.content.decode("utf-8-sig").splitlines()) == 2


async def test_a_quarter_manager_imports_only_their_districts_and_the_bounds(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app) as client:
        manager = infra.auth_headers("quarter_manager", districts=("IV",))
        answer = await client.post("/actors/import", content=FILE.encode(), headers=manager)
        assert answer.status_code == 200, answer.text
        rows = answer.json()["rows"]
        # row 1 (III) and row 2 (III and IV) are not within IV
        assert [r["status"] for r in rows[:2]] == ["invalid", "invalid"]
        assert rows[0]["errors"] == [
            {"field": "districts", "msg": "not within your districts", "type": "not_within_your_districts", "ctx": None}
        ]
        assert answer.json()["counts"]["created"] == 0

        for role in ("operator", "data_protection"):
            refused = await client.post("/actors/import", content=FILE.encode(), headers=infra.auth_headers(role))
            assert refused.status_code == 403
        assert (await client.post("/actors/import", content=FILE.encode())).status_code == 401

        too_big = await client.post("/actors/import", content=b"x" * (csv_rows.MAX_BYTES + 1), headers=manager)
        assert too_big.status_code == 413
        too_many = HEADER + "A;other;IV;a@example.org;de;ja\r\n" * (csv_rows.MAX_ROWS + 1)
        refused = await client.post("/actors/import?dry_run=true", content=too_many.encode(), headers=manager)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body"]
        bad_header = await client.post("/actors/import", content=b"vorname;nachname\r\n", headers=manager)
        assert bad_header.status_code == 422 and "missing" in bad_header.json()["detail"][0]["msg"]
