"""The conferences service against a real broker and database: roster from actor events,
fan-out of invitations, delivery outcomes, and idempotency under redelivery.

After publishing events whose effect must be *nothing* (a repeat, a late failure), waiting until
some state shows up proves nothing: it may show up before those events are even read. These
tests wait until the service's consumer group has committed past them (``caught_up``), that is,
until they were handled, and only then look.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from conferences.app import build
from conferences.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared.events import (
    ACTORS_TOPIC,
    CONFERENCES_TOPIC,
    DEAD_LETTER_TOPIC,
    DELIVERIES_TOPIC,
    INVITATIONS_TOPIC,
    ActorDeactivated,
    ActorUpdated,
    ConferenceDetails,
    InvitationFailed,
    InvitationSent,
)
from tests.helpers import (
    CONFERENCE_DAY,
    actor_registered,
    assert_refused,
    caught_up,
    conference_body,
    envelope_of,
    envelopes,
    eventually,
    outbox_empty,
    publish,
    read_to_end,
    read_topic,
    retired_actor_registered,
    running,
    settings_for,
)

GROUP = "conferences"
NOW = datetime.now(UTC)


def sent(invitation: dict[str, Any]) -> InvitationSent:
    """The outcome notifications would publish for an invitation as GET /conferences/{id} shows it."""
    ids = {k: invitation[k] for k in ("conference_id", "actor_id")}
    return InvitationSent(invitation_id=invitation["id"], message_id=f"<{invitation['id']}@x>", sent_at=NOW, **ids)


def failed(invitation: dict[str, Any], reason: str) -> InvitationFailed:
    ids = {k: invitation[k] for k in ("conference_id", "actor_id")}
    return InvitationFailed(invitation_id=invitation["id"], reason=reason, failed_at=NOW, **ids)


async def detail(client: httpx.AsyncClient, conference_id: str) -> dict[str, Any]:
    response = await client.get(f"/conferences/{conference_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    for invitation in found["invitations"]:
        invitation["conference_id"] = conference_id
    return found


async def test_fan_out_invites_every_invitable_actor_of_the_district_once(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    bootstrap = infra.kafka_bootstrap
    invited = [actor_registered("IV"), actor_registered("III", "IV")]
    no_consent = actor_registered("IV", consent=False)
    gone = actor_registered("IV")
    later_no_consent = actor_registered("IV")
    actor_events = [
        *(envelope_of(e) for e in [*invited, no_consent, actor_registered("I"), gone, later_no_consent]),
        envelope_of(ActorDeactivated(actor_id=gone.actor_id, revision=2)),
        envelope_of(
            ActorUpdated(**{**later_no_consent.model_dump(), "revision": 2, "consent_to_notifications": False})
        ),
    ]
    retired = retired_actor_registered("IV", "Alte Fassung e.V.", "alte-fassung@example.org")  # skipped
    async with running(app, infra.auth_headers()) as client:
        await publish(bootstrap, [retired, *actor_events])
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC))
        assert await app.state.runtime.db["roster"].find_one({"_id": retired.aggregate_id}) is None
        dead = await read_to_end(bootstrap, DEAD_LETTER_TOPIC)
        assert retired.aggregate_id.encode() not in {r.key for r in dead}  # skipped, not dead-lettered
        response = await client.post("/conferences", json=conference_body())
        assert response.status_code == 201, response.text
        conference_id = response.json()["id"]

        async def all_issued() -> dict[str, Any] | None:
            found = await detail(client, conference_id)
            return found if found["counts"]["total"] == 2 else None

        found = await eventually(all_issued)
        assert {i["actor_id"] for i in found["invitations"]} == {a.actor_id for a in invited}
        assert found["counts"] == {
            **{"pending": 2, "sent": 0, "failed": 0, "total": 2},
            **{"accepted": 0, "declined": 0, "tentative": 0, "no_answer": 2},
            **{"attendees": 0, "children": 0, "step_free": 0},
        }
        assert found["needs"] == {"interpreters": {}}

        records = await read_topic(bootstrap, INVITATIONS_TOPIC, until=lambda r: len(r) >= 2)
        issued = envelopes(records, "InvitationIssued")
        assert {e.payload["actor_id"] for e in issued} == {a.actor_id for a in invited}
        assert all(e.payload["conference"]["venue"]["name"] == "Kulturzentrum Borbeck" for e in issued)
        assert all(e.correlation_id == response.headers["X-Correlation-ID"] for e in issued)

        # Delivery outcomes move invitations forward; a late failure never undoes a sent mail.
        first, second = found["invitations"]
        await publish(
            bootstrap, [envelope_of(e) for e in (sent(first), failed(second, "SMTP 550"), failed(first, "late"))]
        )
        await eventually(lambda: caught_up(bootstrap, GROUP, DELIVERIES_TOPIC))
        by_id = {i["id"]: i for i in (await detail(client, conference_id))["invitations"]}
        assert (by_id[first["id"]]["status"], by_id[first["id"]]["reason"]) == ("sent", None)
        assert (by_id[second["id"]]["status"], by_id[second["id"]]["reason"]) == ("failed", "SMTP 550")

        # A later attempt that got through turns a failure into sent, and a failure after it does not
        # turn it back (same key, so the failure is handled after the success).
        await publish(bootstrap, [envelope_of(sent(second)), envelope_of(failed(second, "SMTP 550"))])
        await eventually(lambda: caught_up(bootstrap, GROUP, DELIVERIES_TOPIC))
        found = await detail(client, conference_id)
        assert found["counts"]["sent"] == 2 and {i["reason"] for i in found["invitations"]} == {None}

        listed = (await client.get("/conferences", params={"district": "IV"})).json()
        assert [c["id"] for c in listed] == [conference_id]


async def test_the_same_events_delivered_three_times_have_one_effect(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    bootstrap = infra.kafka_bootstrap
    early, late = actor_registered("VII"), actor_registered("VII")
    async with running(app, infra.auth_headers()) as client:
        await publish(bootstrap, [envelope_of(early)] * 3)
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC))
        response = await client.post("/conferences", json=conference_body(district="VII"))
        conference_id = response.json()["id"]
        scheduled = await read_topic(bootstrap, CONFERENCES_TOPIC, until=lambda r: len(r) >= 1)
        # The fan-out's event twice more, and a late joiner's event three times.
        await publish(bootstrap, envelopes(scheduled) * 2 + [envelope_of(late)] * 3)

        # Only once every copy was handled and whatever it caused was relayed do the counts mean
        # anything.
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC, CONFERENCES_TOPIC))
        await eventually(lambda: outbox_empty(app))
        assert len(await read_to_end(bootstrap, CONFERENCES_TOPIC)) == 3
        invitations = (await detail(client, conference_id))["invitations"]
        assert sorted(i["actor_id"] for i in invitations) == sorted([early.actor_id, late.actor_id])
        issued = envelopes(await read_to_end(bootstrap, INVITATIONS_TOPIC), "InvitationIssued")
        assert sorted(e.payload["invitation_id"] for e in issued) == sorted(i["id"] for i in invitations)
        assert await app.state.runtime.db["roster"].count_documents({}) == 2
        # A copy that tried to store its invitation again would fail on the derived _id and end here.
        assert await read_to_end(bootstrap, DEAD_LETTER_TOPIC) == []


async def test_late_joiner_is_invited_to_upcoming_conferences(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        response = await client.post("/conferences", json=conference_body(district="II"))
        conference_id = response.json()["id"]
        await read_topic(infra.kafka_bootstrap, CONFERENCES_TOPIC, until=lambda r: len(r) >= 1)
        newcomer = actor_registered("II")
        await publish(infra.kafka_bootstrap, [envelope_of(newcomer)])

        async def invited() -> list[Any] | None:
            return (await detail(client, conference_id))["invitations"] or None

        invitations = await eventually(invited)
        assert [i["actor_id"] for i in invitations] == [newcomer.actor_id]


async def test_bad_conferences_are_refused_naming_the_field(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app, infra.auth_headers()) as client:
        cases = {
            "district": conference_body(district="X"),
            "title": conference_body(title="  "),
            "ends_at": conference_body(ends_at=f"{CONFERENCE_DAY}T16:00:00+01:00"),
            "starts_at": conference_body(starts_at="2020-03-04T17:00:00+01:00"),
        }
        await assert_refused(client, "/conferences", cases)
        naive = await client.post("/conferences", json=conference_body(starts_at=f"{CONFERENCE_DAY}T17:00:00"))
        assert naive.status_code == 422
        assert (await client.get("/conferences/unknown")).status_code == 404
        assert (await client.get("/conferences", params={"district": "XX"})).status_code == 422


async def test_hostile_text_and_implausible_times_are_refused_and_nothing_is_stored(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    venue = conference_body()["venue"]
    far = (NOW + timedelta(days=2 * 366 + 5)).replace(microsecond=0)
    async with running(app, infra.auth_headers()) as client:
        for text in [
            "Konferenz\r\nBcc: x@example.org",
            "Kon\x00ferenz",
            "Kon\u202eferenz",
            "Kon\u200bferenz",
            "Kon\x9bferenz",
        ]:
            cases: dict[str, dict[str, Any]] = {
                "title": conference_body(title=text),
                "name": conference_body(venue={**venue, "name": text}),
                "address": conference_body(venue={**venue, "address": text}),
                "agenda": conference_body(agenda=["Begrüßung", text]),
            }
            await assert_refused(client, "/conferences", cases)
        await assert_refused(
            client,
            "/conferences",
            {
                "starts_at": conference_body(starts_at=far.isoformat(), ends_at=(far + timedelta(hours=1)).isoformat()),
                "ends_at": conference_body(ends_at=f"{CONFERENCE_DAY[:4]}-03-05T17:00:01+01:00"),
            },
        )
        summer = f"{CONFERENCE_DAY[:4]}-07-02"
        wrong_offset = await client.post(
            "/conferences",
            json=conference_body(starts_at=f"{summer}T17:00:00+01:00", ends_at=f"{summer}T20:00:00+02:00"),
        )
        assert wrong_offset.status_code == 422
        error = wrong_offset.json()["detail"][0]
        assert error["loc"][-1] == "starts_at" and "+02:00" in error["msg"], error
        listed = await client.get("/conferences")
        assert listed.json() == []
        assert listed.headers["Cache-Control"] == "no-store"


async def test_a_draft_invites_nobody_until_it_is_published(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    bootstrap = infra.kafka_bootstrap
    early = actor_registered("IV")
    async with running(app, infra.auth_headers()) as client:
        await publish(bootstrap, [envelope_of(early)])
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC))
        response = await client.post("/conferences", json=conference_body(draft=True))
        assert response.status_code == 201, response.text
        draft = response.json()
        assert draft["status"] == "draft"
        # A late joiner is not invited to a draft either.
        late = actor_registered("IV")
        await publish(bootstrap, [envelope_of(late)])
        await eventually(lambda: outbox_empty(app))
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC, CONFERENCES_TOPIC))
        assert [e.event_type for e in envelopes(await read_to_end(bootstrap, CONFERENCES_TOPIC))] == [
            "ConferenceDrafted"
        ]
        assert (await detail(client, draft["id"]))["invitations"] == []
        assert await read_to_end(bootstrap, INVITATIONS_TOPIC) == []
        listed = (await client.get("/conferences")).json()
        assert [(c["id"], c["status"]) for c in listed] == [(draft["id"], "draft")]

        published = await client.post(f"/conferences/{draft['id']}/publish")
        assert published.status_code == 200, published.text
        assert published.json()["status"] == "scheduled"

        async def both_invited() -> dict[str, Any] | None:
            found = await detail(client, draft["id"])
            return found if found["counts"]["total"] == 2 else None

        found = await eventually(both_invited)
        assert {i["actor_id"] for i in found["invitations"]} == {early.actor_id, late.actor_id}

        # Publishing again is harmless: 200, the conference as it is, no second ConferenceScheduled.
        again = await client.post(f"/conferences/{draft['id']}/publish")
        assert again.status_code == 200 and again.json()["status"] == "scheduled"
        await eventually(lambda: outbox_empty(app))
        on_topic = envelopes(await read_to_end(bootstrap, CONFERENCES_TOPIC))
        assert [e.event_type for e in on_topic] == ["ConferenceDrafted", "ConferenceScheduled"]
        # The same details (times as instants: one was read back from the database, in UTC).
        drafted, scheduled = (ConferenceDetails.model_validate(e.payload["details"]) for e in on_topic)
        assert drafted == scheduled
        assert (await client.post("/conferences/unknown/publish")).status_code == 404

        # A draft whose start has passed (time went by) cannot be published.
        stale = (await client.post("/conferences", json=conference_body(draft=True))).json()
        past = datetime.now(UTC) - timedelta(hours=1)
        await app.state.runtime.db["conferences"].update_one({"_id": stale["id"]}, {"$set": {"starts_at": past}})
        refused = await client.post(f"/conferences/{stale['id']}/publish")
        assert refused.status_code == 409 and "started" in refused.json()["detail"]

        # draft is a strict boolean, named when wrong.
        await assert_refused(
            client, "/conferences", {"draft": conference_body(draft="yes"), "agenda": conference_body(agenda="x")}
        )
        assert (await client.post("/conferences", json=conference_body(draft=1))).status_code == 422


async def test_a_resend_issues_the_invitation_again_and_its_status_follows_that_attempt(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name))
    bootstrap = infra.kafka_bootstrap
    actor = actor_registered("IV")
    async with running(app, infra.auth_headers()) as client:
        await publish(bootstrap, [envelope_of(actor)])
        await eventually(lambda: caught_up(bootstrap, GROUP, ACTORS_TOPIC))
        conference_id = (await client.post("/conferences", json=conference_body())).json()["id"]

        async def invited() -> list[dict[str, Any]] | None:
            return (await detail(client, conference_id))["invitations"] or None

        [invitation] = await eventually(invited)
        await publish(bootstrap, [envelope_of(failed(invitation, "SMTP 550"))])
        await eventually(lambda: caught_up(bootstrap, GROUP, DELIVERIES_TOPIC))

        path = f"/conferences/{conference_id}/invitations/{invitation['id']}/resend"
        response = await client.post(path)
        assert response.status_code == 202, response.text
        assert (response.json()["status"], response.json()["resend"]) == ("pending", 1)
        records = await read_topic(bootstrap, INVITATIONS_TOPIC, until=lambda r: len(r) >= 2)
        first, second = sorted(envelopes(records, "InvitationIssued"), key=lambda e: e.payload["resend"])
        assert (first.payload["resend"], second.payload["resend"]) == (0, 1)
        assert first.event_id != second.event_id
        assert second.payload["invitation_id"] == invitation["id"]
        assert second.correlation_id == response.headers["X-Correlation-ID"]

        # A late outcome of the first attempt (a redelivered failure, or a success) changes nothing ...
        stale_sent = sent(invitation)
        await publish(bootstrap, [envelope_of(failed(invitation, "late")), envelope_of(stale_sent)])
        await eventually(lambda: caught_up(bootstrap, GROUP, DELIVERIES_TOPIC))
        [now] = (await detail(client, conference_id))["invitations"]
        assert (now["status"], now["reason"], now["resend"]) == ("pending", None, 1)
        # ... the outcome of the resend does.
        await publish(bootstrap, [envelope_of(stale_sent.model_copy(update={"resend": 1}))])
        await eventually(lambda: caught_up(bootstrap, GROUP, DELIVERIES_TOPIC))
        [now] = (await detail(client, conference_id))["invitations"]
        assert (now["status"], now["resend"]) == ("sent", 1)

        assert (await client.post(f"/conferences/{conference_id}/invitations/unknown/resend")).status_code == 404
        assert (await client.post(f"/conferences/unknown/invitations/{invitation['id']}/resend")).status_code == 404
        past = datetime.now(UTC) - timedelta(hours=1)
        await app.state.runtime.db["conferences"].update_one({"_id": conference_id}, {"$set": {"starts_at": past}})
        started = await client.post(path)
        assert started.status_code == 409 and "started" in started.json()["detail"]
