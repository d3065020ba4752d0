"""The Art. 14 notice against a real broker, databases and SMTP sink: an actor registered with
consent through the actors API by a staff token gets exactly one notice (from the
``ContactChanged`` the actors service records with ``consent_recorded_by_staff``), with the
unsubscribe headers; a later change of another field brings no second one; an actor imported
from CSV with consent gets one too (the import registers through the same handler)."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from actors.app import build as build_actors
from actors.settings import Settings as ActorsSettings
from notifications.app import build as build_notifications
from notifications.settings import Settings as NotificationsSettings
from quartier.embedded import Infrastructure
from quartier_shared.events import CONTACTS_TOPIC
from tests.helpers import actor_body, caught_up, eventually, outbox_empty, read_mails, running, settings_for


async def test_staff_recorded_consent_brings_one_notice_and_a_later_change_none(
    infra: Infrastructure, database_name: str, smtp_sink: tuple[int, Path]
) -> None:
    maildir = smtp_sink[1]
    address = f"notice-{database_name}@example.org"
    imported = f"imported-{database_name}@example.org"
    actors = build_actors(settings_for(ActorsSettings, infra, f"{database_name}_a"))
    notifications = build_notifications(settings_for(NotificationsSettings, infra, f"{database_name}_n"))
    manager = infra.auth_headers("quarter_manager", districts=("IV",), subject="subject-qm-iv")

    def notices_to(to: str) -> list[EmailMessage]:
        return [m for m in read_mails(maildir, notices=True) if to in str(m["To"])]

    async def arrived(to: str) -> list[EmailMessage] | None:
        return notices_to(to) or None

    async with running(actors, manager) as client, running(notifications):
        registered = await client.post("/actors", json=actor_body(email=address, language="en"))
        assert registered.status_code == 201, registered.text
        actor_id = registered.json()["id"]

        [notice] = await eventually(lambda: arrived(address))
        assert "Art. 14 GDPR" in str(notice["Subject"])
        assert str(notice["List-Unsubscribe"]).startswith("<http://localhost:8002/unsubscribe/")
        assert str(notice["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        text = str(notice.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]
        assert "your name, your e-mail address, your districts" in " ".join(text.split())
        assert "district IV" in " ".join(text.split())  # the footer: the actor's districts
        assert "subject-qm-iv" not in notice.as_string()  # never who recorded it
        assert read_mails(maildir) == []  # the default leaves notices out

        renamed = await client.patch(f"/actors/{actor_id}", json={"name": "Caritas Borbeck"})
        assert renamed.status_code == 200, renamed.text
        await eventually(lambda: outbox_empty(actors))
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "notifications", CONTACTS_TOPIC))
        assert len(notices_to(address)) == 1

        csv = f"name;kind;districts;email;language;consent\r\nVerein Borbeck;other;IV;{imported};de;ja\r\n"
        done = await client.post("/actors/import", content=csv.encode())
        assert done.status_code == 200 and done.json()["counts"]["created"] == 1, done.text
        [by_import] = await eventually(lambda: arrived(imported))
        assert "Art. 14 DSGVO" in str(by_import["Subject"])
        assert len(read_mails(maildir, notices=True)) == 2
