"""Erasure and export across the three services (issue 12), in-process on the real broker,
database and SMTP sink: an actor is registered, invited (the mail reaches the sink), answers with
free text on the answer page; `quartier privacy export` gathers its data from the three services
over HTTP; after `POST /actors/{id}/erasure` every service confirms within 60 s, no collection of
any service database holds the name, the address or the free text, no record of any topic but
the compacted contact topic holds the name or the address (the contact topic and its dead letters
end in a tombstone under the actor's id), the conference's figures are the same, and a replay of
the actor's old events brings nothing back and sends no mail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import actors.app
import actors.settings
import conferences.app
import conferences.settings
import notifications.app
import notifications.settings
from quartier.cli import main
from quartier.embedded import Infrastructure, free_port
from quartier_shared.events import (
    ACTORS_TOPIC,
    CONFERENCES_TOPIC,
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    INVITATIONS_TOPIC,
    Envelope,
)
from quartier_shared.topics import TOPICS
from tests.helpers import (
    actor_body,
    caught_up,
    conference_body,
    envelopes,
    eventually,
    outbox_empty,
    publish,
    read_mails,
    read_to_end,
    settings_for,
)

NAME = "Nachbarschaftshilfe Schönebeck e.V."
EMAIL = "kontakt@nachbarschaftshilfe-schoenebeck.example.org"
DEPUTY, COMMENT = "Hildegard Vertreterin-Beispiel", "Wir kommen mit dem Lastenrad und bringen Kuchen."
ANSWER = {
    "answer": "accepted",
    "attendees": "3",
    "representative": DEPUTY,
    "interpreter_language": "ar",
    "accessibility": "yes",
    "childcare": "2",
    "comment": COMMENT,
}
CONSUMED = {
    "conferences": (ACTORS_TOPIC, CONFERENCES_TOPIC),
    "notifications": (ACTORS_TOPIC, CONTACTS_TOPIC, CONFERENCES_TOPIC, INVITATIONS_TOPIC),
}
LINK = re.compile(r"https?://[^\s\"<>]*(/rsvp/[A-Za-z0-9._~-]+)")


@contextlib.asynccontextmanager
async def services(infra: Infrastructure, database_name: str) -> AsyncIterator[dict[str, FastAPI]]:
    apps = {
        "actors": actors.app.build(settings_for(actors.settings.Settings, infra, f"{database_name}_a")),
        "conferences": conferences.app.build(settings_for(conferences.settings.Settings, infra, f"{database_name}_c")),
        "notifications": notifications.app.build(
            settings_for(notifications.settings.Settings, infra, f"{database_name}_n")
        ),
    }
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        for app in apps.values():
            await app.state.runtime.kafka_connected.wait()
        yield apps

        async def quiet() -> bool:  # stop only once everything caused is handled
            relayed = all([await outbox_empty(app) for app in apps.values()])
            return relayed and all(
                [await caught_up(infra.kafka_bootstrap, group, *topics) for group, topics in CONSUMED.items()]
            )

        await eventually(quiet, timeout=120)


@contextlib.asynccontextmanager
async def served(apps: dict[str, FastAPI]) -> AsyncIterator[dict[str, str]]:
    """The apps on HTTP ports of their own (their lifespans run already), for the CLI to call."""
    servers = {
        name: uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning")
        )
        for name, app in apps.items()
    }
    tasks = [asyncio.create_task(server.serve()) for server in servers.values()]

    async def started() -> bool:
        return all(server.started for server in servers.values())

    try:
        await eventually(started)
        yield {name: f"http://127.0.0.1:{server.config.port}" for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.should_exit = True
        await asyncio.gather(*tasks)


async def export_by_cli(
    capsys: pytest.CaptureFixture[str], urls: dict[str, str], token: str, actor_id: str, out: Path
) -> tuple[int, str]:
    """`quartier privacy export` in a thread (it blocks on HTTP to these very services)."""
    capsys.readouterr()
    args = ["privacy", "export", actor_id, "--out", str(out), "--token", token]
    args += [arg for name, url in urls.items() for arg in (f"--{name}-url", url)]
    code = await asyncio.to_thread(main, args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def every_document(apps: dict[str, FastAPI]) -> str:
    """Every document of every collection of the three services' databases, as one text."""
    texts: list[str] = []
    for app in apps.values():
        db = app.state.runtime.db
        for name in await db.list_collection_names():
            texts += [json.dumps(doc, default=str, ensure_ascii=False) async for doc in db[name].find()]
    return "\n".join(texts)


def _readable(data: bytes | None) -> str:
    """A key, value or header as text, JSON with its escapes undone (an "ö" may travel as \\u00f6)."""
    if data is None:
        return ""
    text = data.decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError):
        text += "\n" + json.dumps(json.loads(text), ensure_ascii=False)
    return text


async def every_record_but_the_contacts(bootstrap: str) -> str:
    """Every record (key, value, headers) of every topic but the compacted contact topic, as one
    lower-case text."""
    texts: list[str] = []
    for topic in TOPICS:
        if topic == CONTACTS_TOPIC:
            continue
        for record in await read_to_end(bootstrap, topic):
            texts += [_readable(record.key), _readable(record.value)]
            texts += [f"{name}={_readable(value)}" for name, value in record.headers or ()]
    return "\n".join(texts).lower()


async def test_an_actor_is_exported_from_and_erased_in_every_service(
    infra: Infrastructure,
    database_name: str,
    smtp_sink: tuple[int, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    maildir = smtp_sink[1]
    coordinator = infra.auth_headers("coordinator", subject="subject-coordinator")
    officer = infra.auth_headers("data_protection", subject="subject-dpo")
    assert infra.issuer is not None
    token = infra.issuer.token(["data_protection"], [], subject="subject-dpo", minutes=10)
    async with services(infra, database_name) as apps:
        clients = {
            name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
            for name, app in apps.items()
        }
        staff, public = clients["actors"], clients["conferences"]
        created = await staff.post("/actors", json=actor_body(name=NAME, email=EMAIL), headers=coordinator)
        assert created.status_code == 201, created.text
        actor_id = created.json()["id"]
        other = await staff.post("/actors", json=actor_body(), headers=coordinator)  # someone else, kept
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "conferences", ACTORS_TOPIC))
        scheduled = await public.post("/conferences", json=conference_body(), headers=coordinator)
        assert scheduled.status_code == 201, scheduled.text
        conference_id = scheduled.json()["id"]

        def invitation_mail() -> str | None:
            for mail in read_mails(maildir):
                if EMAIL in str(mail["To"]):
                    body = mail.get_body(preferencelist=("plain",))
                    found = LINK.search(body.get_content() if body else "")
                    return found.group(1) if found else None
            return None

        async def mailed() -> str | None:
            return invitation_mail()

        link = await eventually(mailed, timeout=60)
        answered = await public.post(link, data=ANSWER)
        assert answered.status_code == 200, answered.text

        async def detail() -> dict[str, Any]:
            found = await public.get(f"/conferences/{conference_id}", headers=coordinator)
            return dict(found.json())

        async def answer_and_mails_settled() -> dict[str, Any] | None:
            current = await detail()
            sent = all(i["status"] == "sent" for i in current["invitations"]) and len(current["invitations"]) == 2
            confirmed = sum(EMAIL in str(m["To"]) for m in read_mails(maildir)) == 2  # invitation, confirmation
            return current if sent and confirmed and current["counts"]["accepted"] == 1 else None

        before = await eventually(answer_and_mails_settled, timeout=60)

        # The export, before the erasure: the CLI gathers the three services over HTTP.
        out = tmp_path / "export.json"
        async with served(apps) as urls:
            code, said = await export_by_cli(capsys, urls, token, actor_id, out)
            assert code == 0, said
            down = {**urls, "notifications": f"http://127.0.0.1:{free_port()}"}
            code, said = await export_by_cli(capsys, down, token, actor_id, tmp_path / "never.json")
            assert code == 1 and "notifications" in said and "Traceback" not in said, said
            assert not (tmp_path / "never.json").exists()
            code, said = await export_by_cli(capsys, urls, "not-a-token", actor_id, tmp_path / "never.json")
            assert code == 2 and "actors refused the token (401)" in said, said
        exported = json.loads(out.read_text())
        assert {k: exported[k] for k in ("format", "actor_id")} == {"format": "quartier-export/1", "actor_id": actor_id}
        assert exported["actors"]["registry_entry"]["name"] == NAME
        [invitation] = exported["conferences"]["invitations"]
        assert invitation["conference_id"] == conference_id and invitation["status"] == "sent"
        assert (invitation["answer"]["representative"], invitation["answer"]["comment"]) == (DEPUTY, COMMENT)
        assert exported["notifications"]["contact"]["email"] == EMAIL
        assert sorted(d["kind"] for d in exported["notifications"]["deliveries"]) == [
            "confirmation",
            "invitation",
            "notice",
        ]
        assert all(d["status"] == "sent" and d["message_id"] for d in exported["notifications"]["deliveries"])
        [notice] = [d for d in exported["notifications"]["deliveries"] if d["kind"] == "notice"]
        assert (notice["conference_title"], notice["conference_starts_at"]) == (None, None)  # it belongs to none
        assert out.stat().st_mode & 0o077 == 0  # personal data: the owner's alone

        # The erasure: every service confirms within 60 s.
        erased = await staff.post(f"/actors/{actor_id}/erasure", headers=officer)
        assert erased.status_code == 200, erased.text

        async def complete() -> dict[str, Any] | None:
            state = (await staff.get(f"/actors/{actor_id}/erasure", headers=officer)).json()
            return state if state["complete"] else None

        state = await eventually(complete, timeout=60)
        assert {s["service"]: s["status"] for s in state["services"]} == {
            "actors": "finished",
            "conferences": "finished",
            "notifications": "finished",
        }
        for app in apps.values():
            await eventually(lambda app=app: outbox_empty(app))  # type: ignore[misc]

        stored = await every_document(apps)
        for personal in (NAME, EMAIL, DEPUTY, COMMENT):
            assert personal not in stored, personal
        assert other.json()["email"] in stored  # the scan does see what is there

        # Kafka: the name and the address were on the contact topic only, which now ends in a
        # tombstone under the actor's id, as its dead letters do (compaction removes the rest).
        on_topics = await every_record_but_the_contacts(infra.kafka_bootstrap)
        assert NAME.lower() not in on_topics and EMAIL.lower() not in on_topics
        assert actor_id in on_topics  # the scan does see the actor's events
        contacts = [r for r in await read_to_end(infra.kafka_bootstrap, CONTACTS_TOPIC) if r.key == actor_id.encode()]
        assert contacts[-1].value is None
        assert any(EMAIL in _readable(r.value) and NAME in _readable(r.value) for r in contacts[:-1])
        dead_letters = await read_to_end(infra.kafka_bootstrap, CONTACTS_DEAD_LETTER_TOPIC)
        assert [r.value for r in dead_letters if r.key == actor_id.encode()] == [None]
        after = await detail()
        assert (after["counts"], after["needs"]) == (before["counts"], before["needs"])
        answer = next(i for i in after["invitations"] if i["actor_id"] == actor_id)["answer"]
        assert (answer["representative"], answer["comment"]) == (None, None) and answer["attendees"] == 3

        # The personal link still verifies, but an erased actor's invitation takes no more answers.
        assert (await public.get(link)).status_code == 404
        assert (await public.post(link, data=ANSWER)).status_code == 404

        # A replay of the actor's old events (as new deliveries of them): nothing back, no mail.
        mails = len(read_mails(maildir))
        old = [
            e
            for topic in (ACTORS_TOPIC, CONTACTS_TOPIC)
            for e in envelopes(await read_to_end(infra.kafka_bootstrap, topic))
            if e.aggregate_id == actor_id and e.event_type in {"ActorRegistered", "ActorUpdated", "ContactChanged"}
        ]
        old += [
            e
            for e in envelopes(await read_to_end(infra.kafka_bootstrap, INVITATIONS_TOPIC))
            if e.payload.get("actor_id") == actor_id
        ]
        assert old and any(e.payload.get("email") == EMAIL for e in old)
        await publish(infra.kafka_bootstrap, [_again(e) for e in old])

        async def replayed() -> bool:
            return all([await caught_up(infra.kafka_bootstrap, group, *topics) for group, topics in CONSUMED.items()])

        await eventually(replayed, timeout=60)
        for app in apps.values():
            await eventually(lambda app=app: outbox_empty(app))  # type: ignore[misc]
        stored = await every_document(apps)
        for personal in (NAME, EMAIL, DEPUTY, COMMENT):
            assert personal not in stored, personal
        assert len(read_mails(maildir)) == mails
        assert not any(EMAIL in str(m["To"]) for m in read_mails(maildir)[mails:])
        on_topics = await every_record_but_the_contacts(infra.kafka_bootstrap)  # nothing dead-lettered either
        assert NAME.lower() not in on_topics and EMAIL.lower() not in on_topics

        # The export after the erasure holds nothing personal either.
        parts = {
            name: (await clients[name].get(f"/actors/{actor_id}/export", headers=officer)).json()
            for name in ("conferences", "notifications")
        }
        assert parts["notifications"]["contact"]["erased"] is True
        assert parts["conferences"]["roster_entry"]["erased"] is True
        text = json.dumps(parts, ensure_ascii=False)
        for personal in (NAME, EMAIL, DEPUTY, COMMENT):
            assert personal not in text
        for client in clients.values():
            await client.aclose()


def _again(envelope: Envelope) -> Envelope:
    """The same event delivered anew (a fresh event id, so no consumer skips it as seen)."""
    return envelope.model_copy(update={"event_id": str(uuid.uuid4())})
