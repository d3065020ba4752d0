"""The mails that follow an invitation (update, cancellation, reminders) through the real broker,
database and SMTP sink, the events published as the conferences service publishes them.

Each test waits until the service's consumer group has committed past what it published (the
events were handled) before it looks at the mails; the sink numbers its files in arrival order,
which is what "an invitation, then its cancellation" is checked against.
"""

from __future__ import annotations

from collections import defaultdict
from email.message import EmailMessage
from pathlib import Path

from fastapi import FastAPI
from icalendar import Calendar

from notifications.domain import CANCELLABLE
from quartier.embedded import Infrastructure
from quartier_shared.events import CONTACTS_TOPIC, INVITATIONS_TOPIC
from tests.helpers import caught_up, envelope_of, eventually, publish_at_once, read_mails, running
from tests.integration.test_notifications_service import GROUP, outcomes, send, service
from tests.unit.notifications.fakes import CONFERENCE, actor, cancelled, invitation, reminded, updated

NEW_TITLE = "Stadtteilkonferenz Borbeck"


def kind_of(mail: EmailMessage) -> str:
    return str(mail["Message-ID"]).strip()[1:].split("-", 1)[0]


def calendar_of(mail: EmailMessage) -> Calendar:
    (part,) = [p for p in mail.walk() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_content())


def text_of(mail: EmailMessage) -> str:
    return str(mail.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]


async def _at_least_one_mail(maildir: Path) -> bool:
    return any(maildir.glob("*.eml"))  # noqa: ASYNC240 (a directory listing, polled in a test)


async def handled(infra: Infrastructure) -> None:
    await eventually(lambda: caught_up(infra.kafka_bootstrap, GROUP, INVITATIONS_TOPIC))


async def test_a_sent_invitation_is_followed_by_its_update_its_reminders_and_its_cancellation(
    infra: Infrastructure, database_name: str, tmp_path: Path
) -> None:
    app: FastAPI = service(infra, database_name)
    maildir = tmp_path / "mail"
    person = actor("gemeinde@example.org")
    issued = invitation(person.actor_id)
    change = updated(issued, confirm=True, title=NEW_TITLE)
    async with running(app, infra.auth_headers("operator")) as client:
        await send(infra, person, issued)
        await outcomes(infra, 1)
        first, nudge = reminded(issued, "please_answer", "P7D"), reminded(issued, "see_you", "P1D")
        # The event and a copy of each: one mail each. One step at a time, for the order of the mails.
        for step in ([change, change], [first, first], [nudge], [cancelled(issued)]):
            await send(infra, *step)
            await handled(infra)
        listed = await client.get("/deliveries", params={"conference_id": CONFERENCE.conference_id})

    mails = read_mails(maildir)
    assert [kind_of(m) for m in mails] == ["invitation", "update", "reminder", "reminder", "cancellation"]
    _, update, please_answer, see_you, cancellation = mails
    assert update["Subject"] == f"Geändert: {NEW_TITLE} am 04.03.2031"
    paragraphs = text_of(update).replace("\r\n", "\n").split("\n\n")
    assert paragraphs[2] == f"Veranstaltung: bisher „{CONFERENCE.title}“, jetzt „{NEW_TITLE}“"
    assert paragraphs[3].startswith("Sie haben zugesagt. Bitte bestätigen Sie über diesen Link")
    request = calendar_of(update)
    event = request.walk("VEVENT")[0]
    assert (str(request["METHOD"]), event.decoded("SEQUENCE")) == ("REQUEST", 1)
    assert str(event["UID"]) == f"conference-{CONFERENCE.conference_id}@essen.example.org"
    assert please_answer["Subject"].startswith("Erinnerung: ") and see_you["Subject"].startswith("Erinnerung: ")
    assert "Erinnerung: bitte antworten Sie" in text_of(please_answer)
    cancel = calendar_of(cancellation)
    assert (str(cancel["METHOD"]), str(cancel.walk("VEVENT")[0]["STATUS"])) == ("CANCEL", "CANCELLED")
    assert str(cancel.walk("VEVENT")[0]["UID"]) == str(event["UID"])
    assert "Grund: Der Saal ist nicht verfügbar" in text_of(cancellation)
    # What operators see: every mail with its kind, and the invitation's status followed only its own.
    assert sorted((d["kind"], d["reminder_id"]) for d in listed.json()) == [
        ("cancellation", None),
        ("invitation", None),
        ("reminder", "P1D"),
        ("reminder", "P7D"),
        ("update", None),
    ]
    assert {d["status"] for d in listed.json()} == {"sent"}


async def test_an_update_before_the_invitation_went_out_makes_the_one_invitation_current(
    infra: Infrastructure, database_name: str, tmp_path: Path
) -> None:
    app = service(infra, database_name)
    newcomer = actor("neu@example.org")
    issued = invitation(newcomer.actor_id)
    async with running(app):
        await send(infra, issued, updated(issued, title=NEW_TITLE))  # its contact has not arrived yet
        await handled(infra)
        await send(infra, newcomer)
        (outcome,) = await outcomes(infra, 1)

    (mail,) = read_mails(tmp_path / "mail")
    assert outcome.event_type == "InvitationSent" and kind_of(mail) == "invitation"
    assert mail["Subject"].startswith(f"Einladung: {NEW_TITLE}")
    assert calendar_of(mail).walk("VEVENT")[0].decoded("SEQUENCE") == 1


async def test_a_cancellation_arriving_while_invitations_go_out_never_comes_before_an_invitation(
    infra: Infrastructure, database_name: str, tmp_path: Path
) -> None:
    """Invitations for many, and the cancellation of each right behind them: every invitee gets
    nothing, or the invitation and then its cancellation; never an invitation after it.

    Three groups: invitations going out when their cancellations come; invitations published
    together with their cancellations (handled in the same consumer batches, at the same time);
    and invitations still waiting for their contact."""
    n = 60
    app = service(infra, database_name)
    maildir = tmp_path / "mail"
    people = [actor(f"person{i}@example.org") for i in range(n)]
    issued = [invitation(p.actor_id) for p in people]
    going, together, late = issued[:20], issued[20:40], people[40:]  # the late ones' contacts come last
    async with running(app):
        await send(infra, *people[:40])
        await publish_at_once(infra.kafka_bootstrap, [envelope_of(i) for i in going + issued[40:]])
        # The first invitations are out, the others still going or waiting: now the cancellations.
        await eventually(lambda: _at_least_one_mail(maildir), interval=0.01)
        await publish_at_once(
            infra.kafka_bootstrap,
            [envelope_of(cancelled(i)) for i in going + issued[40:]]
            + [envelope_of(e) for i in together for e in (i, cancelled(i))],
        )
        await handled(infra)
        await send(infra, *late)
        await eventually(lambda: caught_up(infra.kafka_bootstrap, GROUP, CONTACTS_TOPIC))
        docs = [d async for d in app.state.runtime.db["deliveries"].find({"kind": {"$in": list(CANCELLABLE)}})]

    by_recipient: dict[str, list[str]] = defaultdict(list)
    for mail in read_mails(tmp_path / "mail"):  # in the order the sink took them
        by_recipient[mail["To"].addresses[0].addr_spec].append(kind_of(mail))
    assert all(kinds == ["invitation", "cancellation"] for kinds in by_recipient.values()), dict(by_recipient)
    assert {d["status"] for d in docs} <= {"sent", "cancelled"}
    sent = {d["invitation_id"] for d in docs if d["status"] == "sent"}
    assert len(sent) == len(by_recipient) >= 1  # each invitation that went out was cancelled by mail
    assert not {p.email for p in late} & set(by_recipient)  # cancelled while waiting for the contact
    print(f"of {n}: {len(sent)} invited then cancelled, {n - len(sent)} got nothing")
