"""A database restore never brings an erased actor back (`quartier erasures list|reapply`, issue 16).

In-process on the real broker and database, with the three services: an actor is registered and
reaches every service; a "backup" copies every document of the three databases; the actor is
erased everywhere; the "restore" puts every collection back as it was in the backup (what
`mongorestore --drop` does), and the name and address are back. `quartier erasures reapply` reads
the ledger (the compacted quartier.actors, which the restore did not touch), erases the actor
again in actors over HTTP and publishes its ActorErased again: no service database holds the name
or the address any more, the other actor is untouched. Then only conferences and notifications are
restored (actors keeps its erasure): reapply again, and the republished event erases them too.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from quartier.cli import main
from quartier.embedded import Infrastructure
from quartier_shared.events import ACTORS_TOPIC, CONTACTS_TOPIC
from tests.helpers import actor_body, caught_up, eventually, outbox_empty
from tests.integration.test_erasure_everywhere import every_document, served, services

NAME = "Stadtteilverein Beispielhausen e.V."
EMAIL = "vorstand@stadtteilverein-beispielhausen.example.org"
Snapshot = dict[str, dict[str, list[dict[str, Any]]]]


async def backup(apps: dict[str, FastAPI]) -> Snapshot:
    """Every document of every collection of each service's database."""
    snapshot: Snapshot = {}
    for name, app in apps.items():
        db = app.state.runtime.db
        snapshot[name] = {c: [doc async for doc in db[c].find()] for c in await db.list_collection_names()}
    return snapshot


async def restore(apps: dict[str, FastAPI], snapshot: Snapshot, *names: str) -> None:
    """Each named service's collections replaced by the backup's (mongorestore --drop)."""
    for name in names:
        db = apps[name].state.runtime.db
        for collection, documents in snapshot[name].items():
            await db[collection].delete_many({})
            if documents:
                await db[collection].insert_many(documents)


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_erasures_are_applied_again_after_a_restore(
    infra: Infrastructure, database_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    coordinator = infra.auth_headers("coordinator", subject="subject-coordinator")
    officer = infra.auth_headers("data_protection", subject="subject-dpo")
    assert infra.issuer is not None
    token = infra.issuer.token(["data_protection"], [], subject="subject-dpo", minutes=10)
    kafka = infra.kafka_bootstrap
    async with services(infra, database_name) as apps:
        staff = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps["actors"]), base_url="http://127.0.0.1")
        created = await staff.post("/actors", json=actor_body(name=NAME, email=EMAIL), headers=coordinator)
        assert created.status_code == 201, created.text
        actor_id = created.json()["id"]
        other = await staff.post("/actors", json=actor_body(), headers=coordinator)
        other_id, other_email = other.json()["id"], other.json()["email"]

        async def everywhere() -> bool:
            stored = await every_document(apps)
            copied = stored.count(EMAIL) >= 2  # actors' registry and notifications' contact
            return copied and all(
                [
                    await caught_up(kafka, "conferences", ACTORS_TOPIC),
                    await caught_up(kafka, "notifications", ACTORS_TOPIC, CONTACTS_TOPIC),
                    *[await outbox_empty(app) for app in apps.values()],
                ]
            )

        await eventually(everywhere, timeout=60)
        snapshot = await backup(apps)

        erased = await staff.post(f"/actors/{actor_id}/erasure", headers=officer)
        assert erased.status_code == 200, erased.text

        async def complete() -> bool:
            state = (await staff.get(f"/actors/{actor_id}/erasure", headers=officer)).json()
            return bool(state["complete"])

        await eventually(complete, timeout=60)

        async def gone() -> bool:
            stored = await every_document(apps)
            return NAME not in stored and EMAIL not in stored and other_email in stored

        await eventually(gone, timeout=30)

        # The ledger: the erased actor, ids only; the other actor is not in it.
        code, out, err = await cli(capsys, "erasures", "list", "--kafka", kafka, "--json")
        assert (code, err) == (0, "")
        assert [e["actor_id"] for e in json.loads(out)] == [actor_id]
        assert NAME not in out and EMAIL not in out and other_id not in out

        # The restore of all three databases brings the name and the address back ...
        await restore(apps, snapshot, "actors", "conferences", "notifications")
        stored = await every_document(apps)
        assert NAME in stored and EMAIL in stored

        # ... until the erasures are applied again.
        async with served(apps) as urls:
            args = ["erasures", "reapply", "--kafka", kafka, "--token", token, "--actors-url", urls["actors"]]
            code, out, err = await cli(capsys, *args)
            assert (code, err) == (0, ""), err
            [row] = [line for line in out.splitlines() if line.startswith(actor_id)]
            assert row.endswith("erased")
            await eventually(gone, timeout=60)
            await eventually(complete, timeout=60)  # the restored record of actors: every service confirmed again

            # Only conferences and notifications restored: actors knows the erasure, the
            # republished ActorErased erases their copies.
            await restore(apps, snapshot, "conferences", "notifications")
            assert EMAIL in await every_document(apps)
            code, out, err = await cli(capsys, *args, "--json")
            assert (code, err) == (0, ""), err
            assert [(e["actor_id"], e["actors_service"]) for e in json.loads(out)] == [(actor_id, "erased")]
            await eventually(gone, timeout=60)

            # A token without the role: refused, said in one line, exit 2.
            code, _, err = await cli(capsys, *args[:-4], "--token", "not-a-token", "--actors-url", urls["actors"])
            assert code == 2 and "actors refused the token (401)" in err
