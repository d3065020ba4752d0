"""Retention against a real database (and broker): each service's daily job, run with a clock
moved past the retention period, deletes what expired and nothing else; a second run finds
nothing left; the conference's figures do not change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from actors.app import build as build_actors
from actors.settings import Settings as ActorsSettings
from conferences import handlers
from conferences.app import build as build_conferences
from conferences.commands import AnswerInvitation
from conferences.settings import Settings as ConferencesSettings
from notifications.app import build as build_notifications
from notifications.settings import Settings as NotificationsSettings
from quartier.embedded import Infrastructure
from quartier_shared.retention import months_before
from tests.helpers import actor_body, envelope_of, eventually, publish, running, settings_for
from tests.integration.test_conference_changes import CONTEXT, answer, invited, mark_sent, uow_factory
from tests.integration.test_conferences_service import detail, failed
from tests.unit.notifications.fakes import CONFERENCE, invitation

DEPUTY, COMMENT, SMTP_REPLY = "Erika Beispielfrau", "Wir bringen Flyer auf Arabisch mit", "550 5.1.1 no such user"


def months_after(moment: datetime, months: int) -> datetime:
    return months_before(moment, -months)


async def test_months_are_calendar_months() -> None:
    assert months_before(datetime(2027, 3, 31, tzinfo=UTC), 1) == datetime(2027, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2027, 1, 15, tzinfo=UTC), 12) == datetime(2026, 1, 15, tzinfo=UTC)
    assert months_after(datetime(2027, 12, 15, tzinfo=UTC), 1) == datetime(2028, 1, 15, tzinfo=UTC)


async def test_conferences_strip_answers_free_text_and_smtp_replies_a_year_after_the_end(
    infra: Infrastructure, database_name: str
) -> None:
    app = build_conferences(settings_for(ConferencesSettings, infra, database_name))
    bootstrap = infra.kafka_bootstrap
    async with running(app, infra.auth_headers()) as client:
        conference_id, invitations = await invited(app, client, bootstrap, 3)
        talkative, brief, unreachable = (i["id"] for i in invitations)
        await mark_sent(app, client, bootstrap, conference_id, [talkative, brief])
        await publish(bootstrap, [envelope_of(failed(i, SMTP_REPLY)) for i in invitations if i["id"] == unreachable])
        answered = AnswerInvitation(talkative, "accepted", 2, DEPUTY, "ar", True, 1, COMMENT)
        await handlers.answer_invitation(answered, CONTEXT, uow_factory=uow_factory(app))
        await answer(app, brief, "declined")
        db = app.state.runtime.db

        async def held() -> list[dict[str, Any]] | None:
            docs = await db["invitations"].find({"conference_id": conference_id}).to_list()
            return docs if any(d.get("reason") == SMTP_REPLY for d in docs) else None

        await eventually(held)
        before = await detail(client, conference_id)
        ends_at = (await db["conferences"].find_one({"_id": conference_id}))["ends_at"].replace(tzinfo=UTC)
        retention = app.state.retention

        assert await retention.run_once(months_after(ends_at, 12) - timedelta(days=1)) == {
            "conferences": 0,
            "free_texts": 0,
        }
        assert any(DEPUTY in str(d) and COMMENT in str(d) for d in await held() or [])

        assert await retention.run_once(months_after(ends_at, 12) + timedelta(days=1)) == {
            "conferences": 1,
            "free_texts": 3,  # the deputy's name, the comment, the SMTP reply
        }
        stored = str(await db["invitations"].find({"conference_id": conference_id}).to_list())
        assert DEPUTY not in stored and COMMENT not in stored and SMTP_REPLY not in stored
        after = await detail(client, conference_id)
        assert (after["counts"], after["needs"]) == (before["counts"], before["needs"])

        def answers(found: dict[str, Any]) -> list[Any]:
            return [
                {**i["answer"], "representative": None, "comment": None} if i["answer"] else None
                for i in found["invitations"]
            ]

        assert answers(after) == answers(before)
        assert not any(
            i["answer"] and (i["answer"]["representative"] or i["answer"]["comment"]) for i in after["invitations"]
        )

        again = await retention.run_once(months_after(ends_at, 24))
        assert again == {"conferences": 0, "free_texts": 0}


async def test_notifications_delete_the_deliveries_of_conferences_that_ended_a_year_ago(
    infra: Infrastructure, database_name: str
) -> None:
    later = CONFERENCE.model_copy(
        update={
            "conference_id": "conference-2",
            "starts_at": months_after(CONFERENCE.starts_at, 2),
            "ends_at": months_after(CONFERENCE.ends_at, 2),
        }
    )
    issued = [
        invitation("actor-1"),
        invitation("actor-2"),
        invitation("actor-3").model_copy(update={"conference_id": later.conference_id, "conference": later}),
    ]
    app = build_notifications(settings_for(NotificationsSettings, infra, database_name))
    async with running(app):
        # No contact is known: each waits for its contact, stored as a delivery all the same.
        await publish(infra.kafka_bootstrap, [envelope_of(i) for i in issued])
        deliveries = app.state.runtime.db["deliveries"]

        async def stored() -> int | None:
            return await deliveries.count_documents({}) == 3 or None

        await eventually(stored)
        retention = app.state.retention
        year_after = months_after(CONFERENCE.ends_at, 12)
        assert await retention.run_once(year_after - timedelta(days=1)) == {"deliveries": 0}
        assert await retention.run_once(year_after + timedelta(days=1)) == {"deliveries": 2}
        assert [d["conference_id"] for d in await deliveries.find().to_list()] == [later.conference_id]
        assert await retention.run_once(year_after + timedelta(days=2)) == {"deliveries": 0}


async def test_actors_delete_audit_entries_after_two_years(infra: Infrastructure, database_name: str) -> None:
    app = build_actors(settings_for(ActorsSettings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        created = await client.post("/actors", json=actor_body(districts=["IV"]))
        assert created.status_code == 201, created.text
        assert (await client.get(f"/actors/{created.json()['id']}")).status_code == 200
        audit = app.state.runtime.db["audit"]
        [entry] = await audit.find().to_list()
        read_at = entry["at"].replace(tzinfo=UTC)
        retention = app.state.retention
        assert await retention.run_once(months_after(read_at, 24) - timedelta(days=1)) == {"audit_entries": 0}
        assert await retention.run_once(months_after(read_at, 24) + timedelta(days=1)) == {"audit_entries": 1}
        assert await audit.count_documents({}) == 0
