"""Before the fan-out, on the conferences and notifications services together against a real
broker, database and SMTP sink: a draft sends nothing; its preview (German and English) is what
the invitation mails delivered after publishing say; a test mail arrives marked "[Test] " with a
Message-ID of its own, and no more than the limit per hour. After it: a resend after a corrected
address is a mail of its own, and the invitation's status follows it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

import conferences.app
import conferences.settings
import notifications.app
import notifications.settings
from quartier.embedded import Infrastructure
from quartier_shared.events import ACTORS_TOPIC, CONFERENCES_TOPIC, CONTACTS_TOPIC, ActorUpdated
from tests.helpers import (
    actor_registered,
    caught_up,
    conference_body,
    contact_of,
    envelope_of,
    eventually,
    publish,
    read_mails,
    running,
    settings_for,
)

ACTOR_NAME = "Testakteur"  # the name actor_registered gives every actor
LIMIT = 2  # test mails per conference and hour, for these tests


@contextlib.asynccontextmanager
async def services(infra: Infrastructure, database: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of the conferences and the notifications service, both running, as a coordinator."""
    settings = settings_for(conferences.settings.Settings, infra, f"{database}_c")
    mailing = settings_for(
        notifications.settings.Settings, infra, f"{database}_n", test_mails_per_conference_per_hour=LIMIT
    )
    headers = infra.auth_headers()
    async with (
        running(conferences.app.build(settings), headers) as planning,
        running(notifications.app.build(mailing), headers) as mail,
    ):
        yield planning, mail


def parts(message: EmailMessage) -> dict[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return {"subject": str(message["Subject"]), "text": text.get_content(), "html": html.get_content()}


async def preview_of(mail: httpx.AsyncClient, conference_id: str, language: str) -> dict[str, Any]:
    async def known() -> dict[str, Any] | None:
        response = await mail.get(f"/conferences/{conference_id}/preview", params={"language": language})
        assert response.status_code in (200, 404), response.text
        return response.json() if response.status_code == 200 else None

    return await eventually(known)


async def test_draft_preview_test_mail_and_publish(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    maildir = smtp_sink[1]
    bootstrap = infra.kafka_bootstrap
    german = actor_registered("IV")
    english = actor_registered("IV").model_copy(update={"language": "en"})
    contacts = [contact_of(german, "gemeinde@example.org"), contact_of(english, "club@example.org")]
    async with services(infra, database_name) as (planning, mail):
        await publish(bootstrap, [envelope_of(e) for e in (german, english, *contacts)])
        await eventually(lambda: caught_up(bootstrap, "conferences", ACTORS_TOPIC))
        await eventually(lambda: caught_up(bootstrap, "notifications", CONTACTS_TOPIC))
        assert (await mail.get("/conferences/unknown/preview")).status_code == 404

        created = await planning.post("/conferences", json=conference_body(draft=True))
        assert created.status_code == 201, created.text
        conference_id = created.json()["id"]
        previews = {language: await preview_of(mail, conference_id, language) for language in ("de", "en")}
        french = await mail.get(f"/conferences/{conference_id}/preview", params={"language": "fr"})
        assert french.status_code == 422 and "language" in french.json()["detail"][0]["loc"]
        # The draft was handled by both services, and nobody got anything.
        await eventually(lambda: caught_up(bootstrap, "conferences", CONFERENCES_TOPIC))
        assert (await planning.get(f"/conferences/{conference_id}")).json()["invitations"] == []
        assert read_mails(maildir) == []
        assert previews["de"]["subject"].startswith("Einladung: Integrationskonferenz Borbeck")
        assert previews["en"]["subject"].startswith("Invitation: Integrationskonferenz Borbeck")
        assert "Guten Tag Beispiel-Organisation," in previews["de"]["text"]
        assert "Dear Example organisation," in previews["en"]["text"]
        calendar = previews["de"]["calendar"]
        assert "METHOD:REQUEST" in calendar and f"UID:conference-{conference_id}@" in calendar

        # A test mail, in English, to an address of the coordinator's choosing.
        body = {"email": "koordination@stadt.example.org", "language": "en"}
        sent = await mail.post(f"/conferences/{conference_id}/test-mail", json=body)
        assert sent.status_code == 202, sent.text
        [test_mail] = read_mails(maildir)
        assert test_mail["Message-ID"].strip() == sent.json()["message_id"]
        assert test_mail["To"].addresses[0].addr_spec == "koordination@stadt.example.org"
        shown = previews["en"]
        expected = {"subject": "[Test] " + shown["subject"], "text": shown["text"], "html": shown["html"]}
        assert parts(test_mail) == expected
        # The limit per conference and hour, then 429 with when to try again.
        assert (await mail.post(f"/conferences/{conference_id}/test-mail", json=body)).status_code == 202
        refused = await mail.post(f"/conferences/{conference_id}/test-mail", json=body)
        assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 3600
        assert len(read_mails(maildir)) == LIMIT
        # Not an invitation: no delivery recorded.
        operator = infra.auth_headers("operator")
        deliveries = await mail.get("/deliveries", params={"conference_id": conference_id}, headers=operator)
        assert deliveries.json() == []

        # Published: the invitations go out, and each says what its language's preview said.
        published = await planning.post(f"/conferences/{conference_id}/publish")
        assert published.status_code == 200, published.text

        async def invitations() -> list[EmailMessage] | None:
            found = [m for m in read_mails(maildir) if not str(m["Subject"]).startswith("[Test] ")]
            return found if len(found) == 2 else None

        delivered = {m["To"].addresses[0].addr_spec: m for m in await eventually(invitations)}
        for address, language in (("gemeinde@example.org", "de"), ("club@example.org", "en")):
            real = parts(delivered[address])
            shown = previews[language]
            name = "Beispiel-Organisation" if language == "de" else "Example organisation"
            assert real["subject"] == shown["subject"]
            # The same mail but for the invitee: their name, and their own personal links.
            assert "/unsubscribe/" in shown["text"] and "/unsubscribe/" in shown["html"]
            assert _unlinked(real["text"].replace(ACTOR_NAME, name)) == _unlinked(shown["text"])
            assert _unlinked(real["html"].replace(ACTOR_NAME, name)) == _unlinked(shown["html"])
        # Every test mail and invitation is in the sink, and nothing else.
        assert len(read_mails(maildir)) == LIMIT + 2


def _unlinked(part: str) -> str:
    """``part`` with its personal links' tokens (answer and unsubscribe) taken out."""
    return re.sub(r"/(rsvp|unsubscribe)/[A-Za-z0-9_.-]+", r"/\1/<token>", part)


async def test_a_resend_after_a_corrected_address_is_a_mail_of_its_own(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    maildir = smtp_sink[1]
    bootstrap = infra.kafka_bootstrap
    refused = actor_registered("IV")
    async with services(infra, database_name) as (planning, mail):
        # the sink says 550 to this address
        await publish(bootstrap, [envelope_of(refused), envelope_of(contact_of(refused, "rejected@example.org"))])
        await eventually(lambda: caught_up(bootstrap, "conferences", ACTORS_TOPIC))
        conference_id = (await planning.post("/conferences", json=conference_body())).json()["id"]

        async def invitation_in(status: str) -> dict[str, Any] | None:
            found = (await planning.get(f"/conferences/{conference_id}")).json()["invitations"]
            return found[0] if found and found[0]["status"] == status else None

        failed = await eventually(lambda: invitation_in("failed"))
        operator = infra.auth_headers("operator")
        [first] = (await mail.get("/deliveries", params={"conference_id": conference_id}, headers=operator)).json()

        corrected = ActorUpdated(**{**refused.model_dump(), "revision": 2})
        await publish(bootstrap, [envelope_of(corrected), envelope_of(contact_of(corrected, "neu@example.org"))])
        await eventually(lambda: caught_up(bootstrap, "notifications", CONTACTS_TOPIC))
        resent = await planning.post(f"/conferences/{conference_id}/invitations/{failed['id']}/resend")
        assert resent.status_code == 202, resent.text

        async def delivered() -> list[EmailMessage] | None:
            return read_mails(maildir) or None

        [again] = await eventually(delivered, timeout=15)
        assert again["To"].addresses[0].addr_spec == "neu@example.org"
        assert again["Message-ID"].strip() != first["message_id"]
        sent = await eventually(lambda: invitation_in("sent"), timeout=15)
        assert sent["resend"] == 1
