"""The answer page against a real broker and database: a personal link opens the page without a
staff token, a good answer is stored and published (latest wins), a bad one is shown again with
422, and links that are not ours or have run out record nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from conferences.app import build
from conferences.settings import Settings
from quartier.embedded import Infrastructure
from quartier_shared import links
from quartier_shared.events import ACTORS_TOPIC, ANSWERS_TOPIC
from quartier_shared.web import CONTENT_SECURITY_POLICY
from tests.helpers import (
    actor_registered,
    caught_up,
    conference_body,
    envelope_of,
    envelopes,
    eventually,
    outbox_empty,
    publish,
    read_to_end,
    read_topic,
    running,
    settings_for,
)

NAME, COMMENT = "Erika Mustermann", "Wir bringen Flyer mit."
GOOD = {
    "answer": "accepted",
    "attendees": "3",
    "representative": NAME,
    "interpreter_language": "ar",
    "accessibility": "yes",
    "childcare": "2",
    "comment": COMMENT,
}


class Invited:
    """A running conferences service with one conference in district IV and two invitations."""

    def __init__(self, app: FastAPI, staff: httpx.AsyncClient, conference: dict[str, Any], key: Ed25519PrivateKey):
        self.app, self.staff, self.conference, self.key = app, staff, conference, key
        transport = httpx.ASGITransport(app=app)
        # The invitee's browser: no staff token.
        self.public = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")

    def link(self, invitation_id: str, expires_at: datetime | None = None) -> str:
        expires = expires_at or datetime.fromisoformat(self.conference["ends_at"])
        return f"/rsvp/{links.sign(invitation_id, expires, self.key)}"

    @property
    def invitation_ids(self) -> list[str]:
        return [i["id"] for i in self.conference["invitations"]]

    async def detail(self) -> dict[str, Any]:
        response = await self.staff.get(f"/conferences/{self.conference['id']}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def answers_stored(self) -> int:
        return await self.app.state.runtime.db["invitations"].count_documents({"answer": {"$ne": None}})


@pytest.fixture
async def invited(infra: Infrastructure, database_name: str, tmp_path: Path) -> AsyncIterator[Invited]:
    signing, verifying = links.generate_pair(tmp_path / "links")
    app = build(settings_for(Settings, infra, database_name, link_verify_key=str(verifying)))
    async with running(app, infra.auth_headers()) as staff:
        await publish(infra.kafka_bootstrap, [envelope_of(actor_registered("IV")) for _ in range(2)])
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "conferences", ACTORS_TOPIC))
        response = await staff.post("/conferences", json=conference_body())
        assert response.status_code == 201, response.text
        conference_id = response.json()["id"]

        async def both_invited() -> dict[str, Any] | None:
            found: dict[str, Any] = (await staff.get(f"/conferences/{conference_id}")).json()
            return found if len(found["invitations"]) == 2 else None

        found = await eventually(both_invited)
        setup = Invited(app, staff, found, links.load_private_key(str(signing)))
        async with setup.public:
            yield setup


def field_error(html: str, field: str) -> str | None:
    """The error text next to ``field``, if the page shows one and the field points to it."""
    control = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{field}"[^>]*>', html, re.S)
    if field == "answer":
        control = re.search(r'<input[^>]*\bid="answer-accepted"[^>]*>', html, re.S)
    assert control is not None, field
    if 'aria-describedby="' not in control.group(0) or 'aria-invalid="true"' not in control.group(0):
        return None
    assert f"{field}-error" in control.group(0)
    error = re.search(rf'id="{field}-error">\s*<span[^>]*></span>\s*<span class="kern-body">([^<]*)</span>', html)
    return error.group(1) if error else None


async def test_the_link_opens_the_page_without_a_staff_token_in_the_visitors_language(invited: Invited) -> None:
    link = invited.link(invited.invitation_ids[0])
    page = await invited.public.get(link)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"
    html = page.text
    assert '<html lang="de">' in html and "Integrationskonferenz Borbeck" in html
    assert "Donnerstag, 4. März" in html and "17:00 bis 20:00 Uhr" in html
    assert "Kulturzentrum Borbeck, Musterstraße 1, 45355 Essen" in html and "<li>Arbeitsgruppen</li>" in html
    # Nothing is loaded from elsewhere, and no script at all; only the footer links leave the site.
    body, footer = html.split("<footer")
    assert "<script" not in html and all(ref[0] in "/?#" for ref in re.findall(r'(?:src|href)="([^"]*)"', body))
    assert 'href="https://www.essen.de/impressum"' in footer
    english = await invited.public.get(link, headers={"accept-language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text and "Thursday, March 4" in english.text
    assert "5:00\u202fPM to 8:00\u202fPM" in english.text
    switched = await invited.public.get(link, params={"lang": "de"}, headers={"accept-language": "en"})
    assert '<html lang="de">' in switched.text and f'href="{link}?lang=en"' in switched.text
    assert (await invited.public.get("/static/kern/kern.min.css")).status_code == 200


async def test_an_answer_is_stored_published_without_name_or_comment_and_the_latest_counts(
    invited: Invited, infra: Infrastructure
) -> None:
    first, second = invited.invitation_ids
    saved = await invited.public.post(invited.link(first), data=GOOD)
    assert saved.status_code == 200, saved.text
    assert "Vielen Dank, Ihre Antwort ist gespeichert." in saved.text
    assert "Ihre aktuelle Antwort: Ja, wir kommen (3 Personen)" in saved.text
    assert saved.headers["cache-control"] == "no-store"
    # The other organisation first accepts, then declines: the decline counts, with its time.
    await invited.public.post(invited.link(second), data={**GOOD, "interpreter_language": "uk"})
    changed = await invited.public.post(
        invited.link(second) + "?lang=en", data={"answer": "declined", "attendees": "1"}
    )
    assert changed.status_code == 200 and "Thank you, your answer has been saved." in changed.text

    found = await invited.detail()
    counts = found["counts"]
    assert {k: counts[k] for k in ("accepted", "declined", "tentative", "no_answer")} == {
        "accepted": 1,
        "declined": 1,
        "tentative": 0,
        "no_answer": 0,
    }
    assert (counts["attendees"], counts["children"], counts["step_free"], counts["total"]) == (3, 2, 1, 2)
    assert all(isinstance(v, int) for v in counts.values())
    assert found["needs"] == {"interpreters": {"ar": 3}}
    by_id = {i["id"]: i for i in found["invitations"]}
    assert by_id[first]["answer"] == {
        "answer": "accepted",
        "attendees": 3,
        "representative": NAME,
        "interpreter_language": "ar",
        "accessibility": True,
        "childcare": 2,
        "comment": COMMENT,
        "answered_at": by_id[first]["answer"]["answered_at"],
    }
    assert by_id[second]["answer"]["answer"] == "declined" and by_id[second]["answer"]["representative"] is None
    assert by_id[second]["answer"]["answered_at"] > by_id[first]["answer"]["answered_at"]
    assert by_id[first]["status"] == "pending"  # the delivery status is another matter

    records = await read_topic(infra.kafka_bootstrap, ANSWERS_TOPIC, until=lambda r: len(r) >= 3)
    answered = envelopes(records, "InvitationAnswered")
    assert [(e.aggregate_id, e.payload["answer"]) for e in answered if e.aggregate_id == second] == [
        (second, "accepted"),
        (second, "declined"),
    ]
    assert all(r.key == e.aggregate_id.encode() for r, e in zip(records, answered, strict=True))
    assert not any(NAME in r.value.decode() or COMMENT in r.value.decode() for r in records if r.value)


async def test_bad_fields_show_the_form_again_with_422_and_the_error_next_to_each(invited: Invited) -> None:
    link = invited.link(invited.invitation_ids[0])
    cases = {
        "answer": {"answer": "maybe"},
        "attendees": {"attendees": "0"},
        "representative": {"representative": "Erika\u202eMustermann"},
        "interpreter_language": {"interpreter_language": "xx"},
        "childcare": {"childcare": "11"},
        "comment": {"comment": "x" * 501},
    }
    for field, change in cases.items():
        page = await invited.public.post(link, data={**GOOD, **change})
        assert page.status_code == 422, field
        assert field_error(page.text, field), field
        others = [f for f in cases if f != field]
        assert not any(field_error(page.text, other) for other in others), field
    missing = await invited.public.post(link + "?lang=en", data={"attendees": "2"})
    assert missing.status_code == 422
    assert field_error(missing.text, "answer") == "Please choose whether you will come."
    assert 'value="2"' in missing.text  # what was typed stays
    assert await invited.answers_stored() == 0
    assert await outbox_empty(invited.app)


async def test_links_that_are_not_ours_or_ran_out_record_nothing(invited: Invited, infra: Infrastructure) -> None:
    invitation_id = invited.invitation_ids[0]
    good = invited.link(invitation_id)
    header, payload, signature = good.removeprefix("/rsvp/").split(".")
    tampered = f"/rsvp/{header}.{payload}.{signature[:-4]}AAAA"
    foreign = (
        f"/rsvp/{links.sign(invitation_id, datetime.now(UTC) + timedelta(days=400), Ed25519PrivateKey.generate())}"
    )
    unknown = invited.link("no-such-invitation")
    for path in (tampered, foreign, unknown, "/rsvp/garbage"):
        for response in (await invited.public.get(path), await invited.public.post(path, data=GOOD)):
            assert response.status_code == 404, path
            assert "Dieser Link ist nicht gültig" in response.text
            assert response.headers["cache-control"] == "no-store"
    expired = invited.link(invitation_id, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    for response in (await invited.public.get(expired), await invited.public.post(expired, data=GOOD)):
        assert response.status_code == 410
        assert "keine Antworten mehr" in response.text
    # Another site's form cannot post an answer, even with a good link.
    cross = await invited.public.post(good, data=GOOD, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    # A cancelled conference: its still valid links answer 410.
    conferences = invited.app.state.runtime.db["conferences"]
    await conferences.update_one({"_id": invited.conference["id"]}, {"$set": {"status": "cancelled"}})
    for response in (await invited.public.get(good), await invited.public.post(good, data=GOOD)):
        assert response.status_code == 410
    assert await invited.answers_stored() == 0
    assert await outbox_empty(invited.app)
    assert envelopes(await read_to_end(infra.kafka_bootstrap, ANSWERS_TOPIC)) == []


async def test_without_a_verify_key_the_page_says_answers_cannot_be_taken(
    infra: Infrastructure, database_name: str
) -> None:
    app = build(settings_for(Settings, infra, database_name, link_verify_key=None))
    async with running(app) as client:
        response = await client.get("/rsvp/anything", params={"lang": "en"})
        assert response.status_code == 503 and "Answers cannot be taken right now" in response.text
        assert response.headers["cache-control"] == "no-store"
