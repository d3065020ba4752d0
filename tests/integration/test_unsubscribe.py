"""Unsubscribe against a real broker, databases and SMTP sink, the three services in this process:
a delivered invitation carries List-Unsubscribe (RFC 8058) and the footer; the page answers in
German and English; a one-click POST without cookie, token or Origin withdraws consent in the
actors service (by the person via link, with ConsentWithdrawn); the coordinator sees
"unsubscribed"; a later update and reminder reach the actor no more; links not ours get 404, run
out 410."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.app import build as build_actors
from actors.consent import PERSON_VIA_LINK
from actors.settings import Settings as ActorsSettings
from conferences.app import build as build_conferences
from conferences.settings import Settings as ConferencesSettings
from notifications.app import build as build_notifications
from notifications.settings import Settings as NotificationsSettings
from quartier.embedded import Infrastructure
from quartier_shared import links
from quartier_shared.events import (
    ACTORS_TOPIC,
    CONFERENCES_TOPIC,
    CONTACTS_TOPIC,
    INVITATIONS_TOPIC,
    UNSUBSCRIBES_TOPIC,
)
from tests.helpers import (
    actor_body,
    caught_up,
    conference_body,
    envelopes,
    eventually,
    outbox_empty,
    read_mails,
    read_to_end,
    running,
    settings_for,
)


@contextlib.asynccontextmanager
async def stack(infra: Infrastructure, database: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The three services, each on a database of its own; a client of each with the right token."""
    actors = build_actors(settings_for(ActorsSettings, infra, f"{database}_a"))
    conferences = build_conferences(settings_for(ConferencesSettings, infra, f"{database}_c"))
    quick = {"smtp_max_attempts": 2, "smtp_backoff_seconds": 0.1}
    notifications = build_notifications(settings_for(NotificationsSettings, infra, f"{database}_n", **quick))
    manager = infra.auth_headers("quarter_manager", districts=("IV",), subject="subject-qm-iv")
    async with (
        running(actors, manager) as actors_client,
        running(conferences, infra.auth_headers()) as conferences_client,
        running(notifications) as _,
    ):
        # The public: no token, no cookie, no Origin (as a mail provider's one-click POST).
        public = httpx.AsyncClient(transport=httpx.ASGITransport(app=conferences), base_url="http://127.0.0.1")
        async with public:
            yield {"actors": actors_client, "conferences": conferences_client, "public": public}
        await eventually(lambda: outbox_empty(conferences))


def mails_to(maildir: Path, address: str) -> list[EmailMessage]:
    return [m for m in read_mails(maildir) if m["To"].addresses[0].addr_spec == address]


def body(mail: EmailMessage, kind: str) -> str:
    return str(mail.get_body(preferencelist=(kind,)).get_content())  # type: ignore[union-attr]


async def test_one_click_unsubscribe_withdraws_consent_and_stops_every_mail(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    maildir = smtp_sink[1]
    address = f"unsub-{database_name}@example.org"
    async with stack(infra, database_name) as client:
        registered = await client["actors"].post("/actors", json=actor_body(email=address, language="en"))
        assert registered.status_code == 201, registered.text
        actor_id = registered.json()["id"]
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "conferences", ACTORS_TOPIC))
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "notifications", CONTACTS_TOPIC))
        scheduled = await client["conferences"].post("/conferences", json=conference_body())
        assert scheduled.status_code == 201, scheduled.text
        conference_id = scheduled.json()["id"]

        async def invitation_mail() -> EmailMessage | None:
            found = mails_to(maildir, address)
            return found[0] if found else None

        invitation = await eventually(invitation_mail)

        # The headers (RFC 8058) and the footer, in the recipient's language.
        header = str(invitation["List-Unsubscribe"])
        assert header.startswith("<http://localhost:8002/unsubscribe/") and header.endswith(">")
        assert str(invitation["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        url = header[1:-1]
        text, html = body(invitation, "plain"), body(invitation, "html")
        assert f"To receive no more e-mails: {url}" in text and f'<a href="{url}">' in html
        assert "integration network of district Borbeck" in text and "Privacy notice: https://" in text
        path = url.removeprefix("http://localhost:8002")

        # The page asks, in German by default and in English when asked; GET changes nothing.
        german = await client["public"].get(path)
        assert german.status_code == 200 and '<html lang="de">' in german.text
        assert "Keine E-Mails mehr erhalten" in german.text and 'method="post"' in german.text
        english = await client["public"].get(path, headers={"Accept-Language": "en"})
        assert english.status_code == 200 and "Receive no more e-mails" in english.text
        assert address not in german.text  # nothing personal on the page
        # The one-click POST, as a mail provider sends it: no cookie, no token, no Origin.
        clicked = await client["public"].post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert clicked.status_code == 200, clicked.text
        assert "Sie erhalten keine E-Mails mehr von uns" in clicked.text

        async def withdrawn() -> dict[str, Any] | None:
            shown: dict[str, Any] = (await client["actors"].get(f"/actors/{actor_id}")).json()
            return shown if shown["consent_to_notifications"] is False else None

        shown = await eventually(withdrawn)
        # One request on the topic: the two GETs before recorded nothing.
        requested = envelopes(await read_to_end(infra.kafka_bootstrap, UNSUBSCRIBES_TOPIC), "UnsubscribeRequested")
        assert [set(e.payload) for e in requested if e.payload["actor_id"] == actor_id] == [
            {"actor_id", "requested_at"}
        ]
        assert shown["consent"]["given"] is False and shown["consent"]["by"] == PERSON_VIA_LINK
        published = envelopes(await read_to_end(infra.kafka_bootstrap, ACTORS_TOPIC), "ConsentWithdrawn")
        (mine,) = [e for e in published if e.payload["actor_id"] == actor_id]
        assert set(mine.payload) == {"actor_id", "revision", "withdrawn_at"}
        # The snapshot of the same revision comes after it: what compaction keeps is the full state.
        last = envelopes(await read_to_end(infra.kafka_bootstrap, ACTORS_TOPIC))
        (last_of_actor, *_) = [e for e in reversed(last) if e.aggregate_id == actor_id]
        assert last_of_actor.event_type == "ActorUpdated"
        assert last_of_actor.payload["revision"] == mine.payload["revision"]

        async def unsubscribed() -> dict[str, Any] | None:
            detail: dict[str, Any] = (await client["conferences"].get(f"/conferences/{conference_id}")).json()
            (one,) = [i for i in detail["invitations"] if i["actor_id"] == actor_id]
            return one if one["unsubscribed"] else None

        await eventually(unsubscribed)
        # ... and notifications' contact copy knows it too, before the changes below are told.
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "notifications", CONTACTS_TOPIC))

        # A change and a reminder after unsubscribing: nothing more reaches the actor.
        changed = await client["conferences"].patch(f"/conferences/{conference_id}", json={"title": "Geändert"})
        assert changed.status_code == 200, changed.text
        nudged = await client["conferences"].post(f"/conferences/{conference_id}/reminders")
        assert nudged.status_code == 202, nudged.text
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "conferences", CONFERENCES_TOPIC))
        told = envelopes(await read_to_end(infra.kafka_bootstrap, INVITATIONS_TOPIC))
        kinds = {e.event_type for e in told if e.payload.get("actor_id") == actor_id}
        assert {"InvitationUpdated", "InvitationReminded"} <= kinds
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "notifications", INVITATIONS_TOPIC))
        assert len(mails_to(maildir, address)) == 1  # the invitation only

        # A second click changes nothing more.
        again = await client["public"].post(path)
        assert again.status_code == 200
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "actors", UNSUBSCRIBES_TOPIC))
        published = envelopes(await read_to_end(infra.kafka_bootstrap, ACTORS_TOPIC), "ConsentWithdrawn")
        assert len([e for e in published if e.payload["actor_id"] == actor_id]) == 1


@pytest.mark.parametrize("language", ["de", "en"])
async def test_links_not_ours_get_404_and_run_out_ones_410(
    infra: Infrastructure, database_name: str, language: str
) -> None:
    app = build_conferences(settings_for(ConferencesSettings, infra, database_name))
    key = links.load_private_key(infra.env()["LINK_SIGNING_KEY"])
    yesterday = datetime.now(UTC) - timedelta(days=1)
    expired = links.sign("actor-1", yesterday, key, purpose=links.UNSUBSCRIBE)
    good = links.sign("actor-1", datetime.now(UTC) + timedelta(days=30), key, purpose=links.UNSUBSCRIBE)
    answer_link = links.sign("inv-1", datetime.now(UTC) + timedelta(days=30), key)
    async with running(app) as client:
        for token, status in [
            (good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), 404),  # tampered
            (answer_link, 404),  # an answer link is no unsubscribe link
            ("garbage", 404),
            (expired, 410),
        ]:
            for method in ("GET", "POST"):
                response = await client.request(method, f"/unsubscribe/{token}", params={"lang": language})
                assert response.status_code == status, (token, method)
                assert f'<html lang="{language}">' in response.text
        # Nothing was recorded for any of them.
        assert await app.state.runtime.db["outbox"].count_documents({}) == 0
