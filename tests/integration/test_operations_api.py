"""The services' operations endpoints (role ``operator``) on the notifications service in-process,
against a real broker and database: a message it cannot read becomes a dead letter that
``GET /operations/dead-letters`` lists by its headers only (no value, no name, no address), and
``POST …/replay`` handles again in the service, writing nothing to the original topic (a service
may not write the topics it consumes): a record it still cannot read is dead-lettered again with
``dlq.replayed_from``, a valid one is handled (its contact stored); a dead letter from a topic none
of its consumers reads is a 409. Another service lists none of them (each its own); the outbox
backlog and the consumers' lag answer; a topic that is not a dead-letter topic is a 422 naming
``topic``. The contact events' dead letters are listed the same way (never their names and
addresses), without one before its key's erasure tombstone, which is not replayed either; a service
that writes none there answers an empty list."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import actors.app
import actors.settings
from notifications.app import build
from notifications.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared import dead_letters as dlq
from quartier_shared import operations
from quartier_shared.events import (
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    DEAD_LETTER_TOPIC,
    INVITATIONS_TOPIC,
    ContactChanged,
)
from tests.helpers import end_offsets, envelope_of, eventually, publish_raw, read_topic, running, settings_for
from tests.integration.test_operator_cli import GARBAGE, dlq_headers, header_map, wrong_shape


async def test_dead_letters_outbox_and_lag_for_operators(infra: Infrastructure, database_name: str) -> None:
    kafka = infra.kafka_bootstrap
    operator = infra.auth_headers("operator")
    app = build(settings_for(Settings, infra, f"{database_name}_n"))
    registry = actors.app.build(settings_for(actors.settings.Settings, infra, f"{database_name}_a"))
    async with running(app, operator) as api, running(registry, operator) as other:
        await publish_raw(kafka, INVITATIONS_TOPIC, GARBAGE, key=b"invitation-garbage")
        await publish_raw(kafka, INVITATIONS_TOPIC, wrong_shape(), key=b"invitation-wrong-shape")
        dead = await read_topic(kafka, DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 2)
        garbage = next(r for r in dead if r.value == GARBAGE)

        listed = await api.get("/operations/dead-letters")
        assert listed.status_code == 200, listed.text
        rows = listed.json()
        assert [r["dlq_offset"] for r in rows] == sorted(r.offset for r in dead)
        assert {r["service"] for r in rows} == {"notifications"}
        assert {r["error_class"] for r in rows} == {"ValidationError"}
        assert all(r["original_topic"] == INVITATIONS_TOPIC for r in rows)
        assert "Erika" not in listed.text and "example.org" not in listed.text and "not json" not in listed.text
        assert (await other.get("/operations/dead-letters")).json() == []  # actors wrote none
        assert (await api.get(f"/operations/dead-letters?topic={DEAD_LETTER_TOPIC}")).status_code == 200
        wrong = await api.get(f"/operations/dead-letters?topic={INVITATIONS_TOPIC}")
        assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["query", "topic"]

        # Handled again in notifications, which still cannot read it: a new dead letter, nothing
        # written to the invitations topic (notifications may not write there).
        invitations_end = await end_offsets(kafka, INVITATIONS_TOPIC)
        replayed = await api.post(f"/operations/dead-letters/{garbage.offset}/replay")
        assert replayed.status_code == 202, replayed.text
        answer = replayed.json()
        assert answer["topic"] == INVITATIONS_TOPIC and answer["dlq_offset"] == garbage.offset
        assert (answer["outcome"], answer["dead_letter_topic"]) == ("dead_lettered_again", DEAD_LETTER_TOPIC)
        assert "not json" not in replayed.text
        again = await read_topic(
            kafka, DEAD_LETTER_TOPIC, until=lambda records: any(dlq.REPLAYED_FROM in header_map(r) for r in records)
        )
        copy = next(r for r in again if dlq.REPLAYED_FROM in header_map(r))
        assert (copy.key, copy.value) == (b"invitation-garbage", GARBAGE)
        headers = header_map(copy)
        assert headers[dlq.REPLAYED_FROM] == str(garbage.offset).encode()
        assert headers[dlq.ORIGINAL_TOPIC] == INVITATIONS_TOPIC.encode()
        assert headers[dlq.OFFSET] == header_map(garbage)[dlq.OFFSET]
        assert await end_offsets(kafka, INVITATIONS_TOPIC) == invitations_end
        assert (await other.post(f"/operations/dead-letters/{garbage.offset}/replay")).status_code == 404
        assert (await api.post("/operations/dead-letters/99999/replay")).status_code == 404

        # A replay that cannot finish (its handler waits for a database that is away) is stopped
        # and answers 503 instead of holding the request.
        async def waits_for_ever(record: object) -> None:
            await asyncio.Event().wait()

        [consumer] = app.state.runtime.consumers
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(operations, "REPLAY_SECONDS", 0.2)
            patch.setattr(consumer, "handle_again", waits_for_ever)
            stopped = await api.post(f"/operations/dead-letters/{garbage.offset}/replay")
        assert stopped.status_code == 503 and stopped.headers.get("Retry-After") == "30", stopped.text

        # A dead letter of notifications from a topic none of its consumers reads: nobody to hand it to.
        await publish_raw(
            kafka,
            DEAD_LETTER_TOPIC,
            GARBAGE,
            key=b"elsewhere",
            headers=dlq_headers("notifications", "quartier.nobody-reads-this", 0, 0, "ValueError", "x"),
        )
        records = await read_topic(kafka, DEAD_LETTER_TOPIC, until=lambda r: any(x.key == b"elsewhere" for x in r))
        stray = next(r for r in records if r.key == b"elsewhere")
        assert (await api.post(f"/operations/dead-letters/{stray.offset}/replay")).status_code == 409

        outbox = (await api.get("/operations/outbox")).json()
        assert set(outbox) == {"pending", "oldest_age_seconds"} and outbox["pending"] >= 0
        consumers = (await api.get("/operations/consumers")).json()
        assert [c["group_id"] for c in consumers] == ["notifications"]
        assert all(isinstance(n, int) for c in consumers for n in c["lag"].values())

        coordinator = httpx.Headers(infra.auth_headers("coordinator"))
        assert (await api.get("/operations/outbox", headers=coordinator)).status_code == 403


async def test_contact_dead_letters_without_values_and_without_erased_ones(
    infra: Infrastructure, database_name: str
) -> None:
    kafka = infra.kafka_bootstrap
    operator = infra.auth_headers("operator")
    app = build(settings_for(Settings, infra, f"{database_name}_n"))
    registry = actors.app.build(settings_for(actors.settings.Settings, infra, f"{database_name}_a"))
    async with running(app, operator) as api, running(registry, operator) as other:
        for actor_id, name in (("actor-1", "Erika Beispiel"), ("actor-2", "Max Muster")):
            await publish_raw(
                kafka,
                CONTACTS_DEAD_LETTER_TOPIC,
                json.dumps({"payload": {"name": name, "email": f"{actor_id}@example.org"}}).encode(),
                key=actor_id.encode(),
                headers=dlq_headers("notifications", CONTACTS_TOPIC, 0, 5, "ValidationError", "payload.language: bad"),
            )
        await publish_raw(kafka, CONTACTS_DEAD_LETTER_TOPIC, None, key=b"actor-1")  # actor-1 was erased
        await read_topic(kafka, CONTACTS_DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 3)
        contacts = {"topic": CONTACTS_DEAD_LETTER_TOPIC}

        listed = await api.get("/operations/dead-letters", params=contacts)
        assert listed.status_code == 200, listed.text
        assert [(r["dlq_offset"], r["original_topic"]) for r in listed.json()] == [(1, CONTACTS_TOPIC)]
        assert "Muster" not in listed.text and "Erika" not in listed.text and "example.org" not in listed.text
        assert (await api.get("/operations/dead-letters")).json() == []  # the main topic: none
        assert (await other.get("/operations/dead-letters", params=contacts)).json() == []  # none are actors'

        assert (await api.post("/operations/dead-letters/0/replay", params=contacts)).status_code == 404  # erased
        assert (await other.post("/operations/dead-letters/1/replay", params=contacts)).status_code == 404
        contacts_end = await end_offsets(kafka, CONTACTS_TOPIC)
        replayed = await api.post("/operations/dead-letters/1/replay", params=contacts)
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["topic"] == CONTACTS_TOPIC
        assert replayed.json()["outcome"] == "dead_lettered_again"
        assert replayed.json()["dead_letter_topic"] == CONTACTS_DEAD_LETTER_TOPIC
        assert "Muster" not in replayed.text and "example.org" not in replayed.text
        again = await read_topic(
            kafka,
            CONTACTS_DEAD_LETTER_TOPIC,
            until=lambda records: any(dlq.REPLAYED_FROM in header_map(r) for r in records),
        )
        assert [(r.key, header_map(r)[dlq.REPLAYED_FROM]) for r in again if dlq.REPLAYED_FROM in header_map(r)] == [
            (b"actor-2", b"1")
        ]

        # A contact that failed once (its store was away, say) and is fine now: stored by the replay.
        changed = ContactChanged(
            actor_id="actor-3",
            revision=1,
            name="Jana Beispiel",
            email="actor-3@example.org",
            language="de",
            consent_to_notifications=True,
        )
        envelope = envelope_of(changed)
        await publish_raw(
            kafka,
            CONTACTS_DEAD_LETTER_TOPIC,
            envelope.model_dump_json().encode(),
            key=b"actor-3",
            headers={
                "event_type": "ContactChanged",
                **dlq_headers("notifications", CONTACTS_TOPIC, 0, 7, "ServerSelectionTimeoutError", "away"),
            },
        )
        letters = await read_topic(
            kafka, CONTACTS_DEAD_LETTER_TOPIC, until=lambda r: any(x.key == b"actor-3" for x in r)
        )
        letter = next(r for r in letters if r.key == b"actor-3")
        stored = app.state.runtime.db["contacts"]
        assert await stored.find_one({"_id": "actor-3"}) is None
        handled = await api.post(f"/operations/dead-letters/{letter.offset}/replay", params=contacts)
        assert handled.status_code == 202, handled.text
        assert handled.json()["outcome"] == "handled" and handled.json()["dead_letter_topic"] is None
        assert handled.json()["event_type"] == "ContactChanged"
        assert "Jana" not in handled.text and "example.org" not in handled.text
        await eventually(lambda: stored.find_one({"_id": "actor-3"}))
        assert await end_offsets(kafka, CONTACTS_TOPIC) == contacts_end
