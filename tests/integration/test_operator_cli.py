"""The operator commands (`quartier dlq list|replay`, `quartier outbox status`) against a real
broker and database: what they print, what they publish, and how they fail."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from notifications.app import build
from notifications.settings import Settings
from quartier.cli import main
from quartier.common import OperatorError, resolve
from quartier.embedded import Infrastructure, free_port
from quartier_shared import dead_letters as dlq
from quartier_shared.events import (
    ACTORS_TOPIC,
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    DEAD_LETTER_TOPIC,
    DELIVERIES_TOPIC,
    INVITATIONS_TOPIC,
)
from quartier_shared.kafka import ensure_topics
from quartier_shared.services import SERVICES
from tests.helpers import end_offsets, publish_raw, read_topic, running, settings_for

QUARTIER = Path(sys.executable).parent / "quartier"
GARBAGE = b"\x00\xffnot json"


def wrong_shape() -> bytes:
    """An envelope whose payload is not its type's (and holds personal data, to show it is never shown)."""
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "InvitationIssued",
            "event_version": "1.0",
            "occurred_at": "2031-01-01T00:00:00+00:00",
            "correlation_id": "c",
            "producer": "somebody",
            "aggregate_id": "x",
            "payload": {"name": "Erika Mustermann", "email": "erika.mustermann@example.org"},
        }
    ).encode()


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """main() as the console script runs it; in a thread, because it runs its own event loop."""

    def call() -> int:
        try:
            return main(list(args))
        except SystemExit as exit:  # argparse refusing the arguments, as the console script would
            return int(exit.code or 0)

    capsys.readouterr()
    code = await asyncio.to_thread(call)
    out, err = capsys.readouterr()
    return code, out, err


def script(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, with no stack address in its environment unless given."""
    environ = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    return subprocess.run(
        [str(QUARTIER), *args], cwd=cwd, env={**environ, **env}, capture_output=True, text=True, timeout=timeout
    )


def dlq_headers(service: str, topic: str, partition: int, offset: int, error: str, message: str) -> dict[str, str]:
    return {
        dlq.ORIGINAL_TOPIC: topic,
        dlq.PARTITION: str(partition),
        dlq.OFFSET: str(offset),
        dlq.SERVICE: service,
        dlq.ERROR_CLASS: error,
        dlq.ERROR_MESSAGE: message,
        dlq.FAILED_AT: "2031-01-02T03:04:05.678901+00:00",
    }


def header_map(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


# --- a real service dead-letters, the operator lists and replays ---------------------------------


async def test_a_real_dead_letter_is_listed_without_personal_data_and_replayed_byte_for_byte(
    infra: Infrastructure, database_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = infra.kafka_bootstrap
    app = build(settings_for(Settings, infra, database_name))
    async with running(app):
        await publish_raw(kafka, INVITATIONS_TOPIC, GARBAGE, key=b"invitation-garbage")
        await publish_raw(kafka, INVITATIONS_TOPIC, wrong_shape(), key=b"invitation-wrong-shape")
        dead = await read_topic(kafka, DEAD_LETTER_TOPIC, until=lambda r: len(r) >= 2)
    garbage = next(r for r in dead if r.value == GARBAGE)

    code, out, err = await cli(capsys, "dlq", "list", "--json", "--kafka", kafka)
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [row["dlq_offset"] for row in rows] == sorted(r.offset for r in dead)
    for row, record in zip(rows, sorted(dead, key=lambda r: r.offset), strict=True):
        headers = header_map(record)
        assert row["service"] == "notifications"
        assert row["original_topic"] == INVITATIONS_TOPIC
        assert row["original_partition"] == int(headers[dlq.PARTITION])
        assert row["original_offset"] == int(headers[dlq.OFFSET])
        assert row["error_class"] == "ValidationError"
        assert row["error_message"] == headers[dlq.ERROR_MESSAGE].decode()
        assert row["failed_at"] == headers[dlq.FAILED_AT].decode()
        assert row["event_type"] is None  # raw messages came without headers
    code, table, _ = await cli(capsys, "dlq", "list", "--kafka", kafka)
    assert code == 0
    assert table.splitlines()[0].split()[:3] == ["OFFSET", "FAILED", "AT"]
    assert len(table.splitlines()) == 3 and table.count(INVITATIONS_TOPIC) == 2
    for text in (out, table):
        assert "Erika" not in text and "example.org" not in text and "not json" not in text

    code, out, err = await cli(capsys, "dlq", "replay", "--offset", str(garbage.offset), "--kafka", kafka)
    assert (code, err) == (0, "")
    assert out.startswith("replayed 1 dead letter:")
    replayed = await read_topic(
        kafka, INVITATIONS_TOPIC, until=lambda records: any(dlq.REPLAYED_FROM in header_map(r) for r in records)
    )
    again = next(r for r in replayed if dlq.REPLAYED_FROM in header_map(r))
    assert again.value == GARBAGE
    assert again.key == b"invitation-garbage"
    assert again.partition == int(header_map(garbage)[dlq.PARTITION])
    assert header_map(again) == {dlq.REPLAYED_FROM: str(garbage.offset).encode()}
    assert f"offset {garbage.offset} -> {INVITATIONS_TOPIC}[{again.partition}]@{again.offset}" in out


# --- hand-made dead letters: filters, validation, headers ----------------------------------------


@pytest.fixture
async def three_dead_letters(kafka: str) -> str:
    """Offsets 0 (notifications, from invitations), 1 (conferences, from deliveries), 2 (notifications,
    from actors); the one at 0 carries an address in its reason, as a careless handler might."""
    await ensure_topics(kafka)
    await publish_raw(
        kafka,
        DEAD_LETTER_TOPIC,
        b'{"payload": {"email": "erika.mustermann@example.org"}}',
        key=b"invitation-1",
        headers={
            "event_id": "e-1",
            "event_type": "InvitationIssued",
            **dlq_headers("notifications", INVITATIONS_TOPIC, 2, 7, "SMTPRecipientsRefused", "550 erika@example.org"),
        },
    )
    await publish_raw(
        kafka,
        DEAD_LETTER_TOPIC,
        b"{}",
        key=b"invitation-2",
        headers=dlq_headers("conferences", DELIVERIES_TOPIC, 1, 3, "ValidationError", "x"),
    )
    await publish_raw(
        kafka,
        DEAD_LETTER_TOPIC,
        b"\x00",
        headers=dlq_headers("notifications", ACTORS_TOPIC, 0, 1, "ValueError", "line\n\x1b[31mred"),
    )
    return kafka


async def test_list_filters_by_service_and_shows_headers_only(
    three_dead_letters: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = three_dead_letters
    code, out, _ = await cli(capsys, "dlq", "list", "--json", "--service", "conferences", "--kafka", kafka)
    assert code == 0
    assert json.loads(out) == [
        {
            "dlq_partition": 0,
            "dlq_offset": 1,
            "failed_at": "2031-01-02T03:04:05.678901+00:00",
            "service": "conferences",
            "original_topic": DELIVERIES_TOPIC,
            "original_partition": 1,
            "original_offset": 3,
            "error_class": "ValidationError",
            "error_message": "x",
            "event_type": None,
        }
    ]
    code, out, _ = await cli(capsys, "dlq", "list", "--json", "--kafka", kafka)
    rows = json.loads(out)
    assert [r["dlq_offset"] for r in rows] == [0, 1, 2]
    assert rows[0]["event_type"] == "InvitationIssued"
    assert rows[0]["error_message"] == "550 <address>"

    code, table, _ = await cli(capsys, "dlq", "list", "--service", "notifications", "--kafka", kafka)
    lines = table.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[1].split()[:6] == [
        "0",
        "2031-01-02",
        "03:04:05+0000",
        "notifications",
        f"{INVITATIONS_TOPIC}[2]@7",
        "SMTPRecipientsRefused",
    ]
    assert "InvitationIssued" in lines[1] and "550 <address>" in lines[1]
    assert "\x1b" not in table and "line  [31mred" in lines[2]
    assert "erika" not in table

    code, out, _ = await cli(capsys, "dlq", "list", "--service", "actors", "--kafka", kafka)
    assert (code, out.strip()) == (0, f"no dead letters in {DEAD_LETTER_TOPIC} from actors")


async def test_replay_restores_topic_key_and_headers_and_refuses_unknown_offsets(
    three_dead_letters: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = three_dead_letters
    code, out, err = await cli(capsys, "dlq", "replay", "--offset", "0", "--offset", "9", "--kafka", kafka)
    assert (code, out) == (2, "")
    assert err.strip() == (
        f"quartier: error: no dead letter at offset 9 in {DEAD_LETTER_TOPIC} (offsets 0-2 exist); nothing replayed"
    )
    code, _, err = await cli(capsys, "dlq", "replay", "--offset", "1", "--service", "notifications", "--kafka", kafka)
    assert code == 2 and "offset 1 is a dead letter of conferences, not notifications" in err
    code, _, err = await cli(capsys, "dlq", "replay", "--kafka", kafka)
    assert code == 2 and "one of the arguments --offset --all is required" in err
    # Nothing reached any topic through the refused commands.
    for topic in (INVITATIONS_TOPIC, DELIVERIES_TOPIC, ACTORS_TOPIC):
        assert set((await end_offsets(kafka, topic)).values()) == {0}

    code, out, err = await cli(capsys, "dlq", "replay", "--all", "--service", "conferences", "--kafka", kafka)
    assert (code, err) == (0, "")
    assert out.splitlines() == ["replayed 1 dead letter:", f"  offset 1 -> {DELIVERIES_TOPIC}[1]@0"]
    code, out, _ = await cli(
        capsys, "dlq", "replay", "--offset", "2", "--offset", "0", "--offset", "2", "--kafka", kafka
    )
    assert code == 0
    assert out.splitlines() == [
        "replayed 2 dead letters:",
        f"  offset 2 -> {ACTORS_TOPIC}[0]@0",
        f"  offset 0 -> {INVITATIONS_TOPIC}[2]@0",
    ]

    delivery = (await read_topic(kafka, DELIVERIES_TOPIC, until=lambda r: len(r) >= 1))[0]
    assert (delivery.partition, delivery.key, delivery.value) == (1, b"invitation-2", b"{}")
    assert header_map(delivery) == {dlq.REPLAYED_FROM: b"1"}
    invitation = (await read_topic(kafka, INVITATIONS_TOPIC, until=lambda r: len(r) >= 1))[0]
    assert (invitation.partition, invitation.key) == (2, b"invitation-1")
    assert invitation.value == b'{"payload": {"email": "erika.mustermann@example.org"}}'
    assert list(invitation.headers) == [
        ("event_id", b"e-1"),
        ("event_type", b"InvitationIssued"),
        (dlq.REPLAYED_FROM, b"0"),
    ]
    actor = (await read_topic(kafka, ACTORS_TOPIC, until=lambda r: len(r) >= 1))[0]
    assert (actor.key, actor.value, header_map(actor)) == (None, b"\x00", {dlq.REPLAYED_FROM: b"2"})
    ends = await end_offsets(kafka, INVITATIONS_TOPIC)
    assert {tp.partition: end for tp, end in ends.items()} == {0: 0, 1: 0, 2: 1, 3: 0, 4: 0, 5: 0}


async def test_an_empty_or_missing_dead_letter_topic_answers_at_once(
    kafka: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code, out, _ = await cli(capsys, "dlq", "list", "--json", "--kafka", kafka)  # no topic yet
    assert (code, json.loads(out)) == (0, [])
    await ensure_topics(kafka)
    code, out, _ = await cli(capsys, "dlq", "list", "--json", "--kafka", kafka)
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = await cli(capsys, "dlq", "list", "--kafka", kafka)
    assert (code, out.strip()) == (0, f"no dead letters in {DEAD_LETTER_TOPIC}")
    code, out, _ = await cli(capsys, "dlq", "replay", "--all", "--kafka", kafka)
    assert (code, out.strip()) == (0, "nothing to replay")
    code, _, err = await cli(capsys, "dlq", "replay", "--offset", "0", "--kafka", kafka)
    assert code == 2 and "(it is empty)" in err
    assert time.monotonic() - started < 15


# --- outbox status ------------------------------------------------------------------------------


async def test_outbox_status_counts_what_waits_and_how_long(
    mongo_uri: str, database_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting, empty = f"{database_name}_waiting", f"{database_name}_empty"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    now = datetime.now(UTC)
    try:
        await client[waiting]["outbox"].insert_many(
            [
                {"owner": "conferences-1", "created_at": now - timedelta(seconds=30), "count": 2, "events": []},
                {"owner": "conferences-2", "created_at": now - timedelta(seconds=120), "count": 1, "events": []},
            ]
        )
    finally:
        await client.close()

    code, out, err = await cli(
        capsys, "outbox", "status", "--json", "--mongodb", mongo_uri, "--database", waiting, "--database", empty
    )
    assert (code, err) == (0, "")
    first, second = json.loads(out)
    assert (first["database"], first["pending"]) == (waiting, 3)  # events, not documents
    assert 120 <= first["oldest_age_seconds"] < 180  # the oldest one
    assert second == {"database": empty, "pending": 0, "oldest_age_seconds": None}

    code, out, _ = await cli(capsys, "outbox", "status", "--mongodb", mongo_uri, "--database", waiting)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["DATABASE", "PENDING", "OLDEST", "(s)"]
    assert lines[1].split()[:2] == [waiting, "3"]

    code, out, _ = await cli(capsys, "outbox", "status", "--json", "--mongodb", mongo_uri)
    assert code == 0
    assert [s["database"] for s in json.loads(out)] == [s.database for s in SERVICES.values()]


# --- where to connect, and failing in one line ---------------------------------------------------


def test_addresses_come_from_the_flag_then_the_environment_then_stack_env(tmp_path: Path) -> None:
    (tmp_path / "stack.env").write_text(
        "# written by quartier run\nKAFKA_BOOTSTRAP_SERVERS=from-file:1\nMONGODB_URI=\n"
    )
    both = {"KAFKA_BOOTSTRAP_SERVERS": "from-env:1"}
    assert resolve("Kafka", "--kafka", "flag:1", "KAFKA_BOOTSTRAP_SERVERS", tmp_path, both).value == "flag:1"
    assert resolve("Kafka", "--kafka", None, "KAFKA_BOOTSTRAP_SERVERS", tmp_path, both).value == "from-env:1"
    from_file = resolve("Kafka", "--kafka", None, "KAFKA_BOOTSTRAP_SERVERS", tmp_path, {})
    assert (from_file.value, from_file.source) == ("from-file:1", str(tmp_path / "stack.env"))
    with pytest.raises(OperatorError) as missing:
        resolve("MongoDB", "--mongodb", None, "MONGODB_URI", tmp_path, {})
    assert missing.value.exit_code == 2 and "make run" in str(missing.value)


async def test_stack_env_written_by_quartier_run_is_found(
    kafka: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "stack.env").write_text(f"KAFKA_BOOTSTRAP_SERVERS={kafka}\nMONGODB_URI=unused\n")
    code, out, _ = await cli(capsys, "dlq", "list", "--json", "--var", str(tmp_path / "var"))
    assert (code, json.loads(out)) == (0, [])
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")  # the environment wins
    code, _, err = await cli(capsys, "dlq", "list", "--var", str(tmp_path / "var"))
    assert code == 1 and "from KAFKA_BOOTSTRAP_SERVERS" in err


def test_without_an_address_the_script_says_how_to_get_one(tmp_path: Path) -> None:
    for args in (["dlq", "list"], ["dlq", "replay", "--all"], ["outbox", "status"]):
        done = script(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1
        assert "make run" in done.stderr and ("KAFKA_BOOTSTRAP_SERVERS" in done.stderr or "MONGODB_URI" in done.stderr)


def test_unreachable_servers_fail_in_one_line(tmp_path: Path) -> None:
    nobody = free_port()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "stack.env").write_text(f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{nobody}\n")
    kafka = script("dlq", "list", cwd=tmp_path)  # a stale stack.env: `make run` was killed
    assert kafka.returncode == 1 and kafka.stdout == ""
    assert kafka.stderr.splitlines() == [
        f"quartier: error: cannot reach Kafka at 127.0.0.1:{nobody} (from var/stack.env): KafkaConnectionError "
        "(is `make run` still running?)"
    ]
    replay = script("dlq", "replay", "--offset", "0", "--kafka", f"127.0.0.1:{nobody}", cwd=tmp_path)
    assert replay.returncode == 1 and len(replay.stderr.splitlines()) == 1

    started = time.monotonic()
    mongo = script(
        "outbox",
        "status",
        cwd=tmp_path,
        MONGODB_URI=f"mongodb://operator:secret@127.0.0.1:{nobody}/?directConnection=true",
    )
    assert mongo.returncode == 1 and mongo.stdout == ""
    assert mongo.stderr.splitlines() == [
        f"quartier: error: cannot reach MongoDB at mongodb://***@127.0.0.1:{nobody}/?directConnection=true "
        "(from MONGODB_URI): no answer within 3s"
    ]
    assert time.monotonic() - started < 20


async def test_the_contact_dead_letters_are_listed_and_replayed_apart_and_an_erased_ones_never(
    kafka: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--topic contacts``: headers only, as for the main topic; a dead letter before its key's
    tombstone (the actor was erased) is gone for the command as it will be after compaction."""
    await ensure_topics(kafka)
    for actor_id, name in (("actor-1", "Erika Beispiel"), ("actor-2", "Max Muster")):
        await publish_raw(
            kafka,
            CONTACTS_DEAD_LETTER_TOPIC,
            json.dumps({"payload": {"name": name, "email": f"{actor_id}@example.org"}}).encode(),
            key=actor_id.encode(),
            headers=dlq_headers("notifications", CONTACTS_TOPIC, 0, 5, "ValidationError", "payload.language: bad"),
        )
    await publish_raw(kafka, CONTACTS_DEAD_LETTER_TOPIC, None, key=b"actor-1")  # actor-1 was erased

    code, out, _ = await cli(capsys, "dlq", "list", "--kafka", kafka)
    assert (code, out.strip()) == (0, f"no dead letters in {DEAD_LETTER_TOPIC}")  # the default: the main one
    code, out, _ = await cli(capsys, "dlq", "list", "--topic", "contacts", "--json", "--kafka", kafka)
    assert code == 0
    assert [(r["dlq_offset"], r["original_topic"]) for r in json.loads(out)] == [(1, CONTACTS_TOPIC)]
    code, table, _ = await cli(capsys, "dlq", "list", "--topic", "contacts", "--kafka", kafka)
    for shown in (out, table):
        assert "example.org" not in shown and "Muster" not in shown and "Erika" not in shown

    code, out, err = await cli(capsys, "dlq", "replay", "--offset", "0", "--topic", "contacts", "--kafka", kafka)
    assert code == 2 and f"no dead letter at offset 0 in {CONTACTS_DEAD_LETTER_TOPIC}" in err
    code, out, _ = await cli(capsys, "dlq", "replay", "--all", "--topic", "contacts", "--kafka", kafka)
    assert code == 0 and out.splitlines() == ["replayed 1 dead letter:", f"  offset 1 -> {CONTACTS_TOPIC}[0]@0"]
    (replayed,) = await read_topic(kafka, CONTACTS_TOPIC, until=lambda r: len(r) >= 1)
    assert replayed.key == b"actor-2"
