"""Who may do what (issue 9): each role against each endpoint and district, on the three services
running in-process against a real broker and database, with tokens verified for real (signed by
the test issuer, whose JWKS is served over HTTP)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

import actors.app
import actors.settings
import conferences.app
import conferences.settings
import notifications.app
import notifications.settings
from quartier.embedded import Infrastructure, free_port
from quartier.issuer import LocalIssuer, jwks
from quartier.issuer import serve as serve_issuer
from quartier_shared.auth import TokenVerifier
from quartier_shared.events import (
    ACTORS_TOPIC,
    CONFERENCES_TOPIC,
    CONTACTS_TOPIC,
    DELIVERIES_TOPIC,
    INVITATIONS_TOPIC,
    TEAMS_TOPIC,
)
from tests.helpers import (
    actor_body,
    caught_up,
    conference_body,
    envelopes,
    eventually,
    outbox_empty,
    read_to_end,
    settings_for,
)

ANONYMOUS = "anonymous"
KEYCLOAK_TOKEN_CLAIMS = Path(__file__).parents[1] / "fixtures" / "keycloak_token_claims.json"
CONSUMED = {
    "conferences": (ACTORS_TOPIC, CONFERENCES_TOPIC, DELIVERIES_TOPIC, TEAMS_TOPIC),
    "notifications": (ACTORS_TOPIC, CONTACTS_TOPIC, CONFERENCES_TOPIC, INVITATIONS_TOPIC),
}
# Who calls: role and districts of the token (no token for ANONYMOUS).
CALLERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "coordinator": (("coordinator",), ()),
    "qm_IV": (("quarter_manager",), ("IV",)),
    "qm_I": (("quarter_manager",), ("I",)),
    "qm_IV_III": (("quarter_manager",), ("IV", "III")),
    "operator": (("operator",), ()),
    "data_protection": (("data_protection",), ()),
    "no_role": ((), ("IV",)),
}


@dataclass
class Stack:
    """The three services in-process, with what the coordinator set up before each case."""

    infra: Infrastructure
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    ids: dict[str, str]

    def headers(self, caller: str, **claims: Any) -> dict[str, str]:
        if caller == ANONYMOUS:
            return {}
        roles, districts = CALLERS[caller]
        assert self.infra.issuer is not None
        return self.infra.issuer.headers(roles, districts, subject=f"subject-{caller}", **claims)

    async def call(self, service: str, caller: str, method: str, path: str, body: Any = None) -> httpx.Response:
        path = path.format(**self.ids)
        if isinstance(body, bytes):  # a file upload (the CSV import) goes as it is
            return await self.clients[service].request(method, path, content=body, headers=self.headers(caller))
        return await self.clients[service].request(method, path, json=body, headers=self.headers(caller))


@pytest.fixture
async def stack(infra: Infrastructure, database_name: str) -> AsyncIterator[Stack]:
    apps = {
        "actors": actors.app.build(settings_for(actors.settings.Settings, infra, f"{database_name}_a")),
        "conferences": conferences.app.build(settings_for(conferences.settings.Settings, infra, f"{database_name}_c")),
        "notifications": notifications.app.build(
            settings_for(notifications.settings.Settings, infra, f"{database_name}_n")
        ),
    }
    clients: dict[str, httpx.AsyncClient] = {}
    lifespans = [app.router.lifespan_context(app) for app in apps.values()]
    for lifespan in lifespans:
        await lifespan.__aenter__()
    try:
        for name, app in apps.items():
            await app.state.runtime.kafka_connected.wait()
            clients[name] = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
        coordinator = infra.auth_headers("coordinator", subject="subject-coordinator")
        ids: dict[str, str] = {}
        for name, districts in {"actor_IV": ["IV"], "actor_IV_III": ["IV", "III"], "actor_I": ["I"]}.items():
            created = await clients["actors"].post("/actors", json=actor_body(districts=districts), headers=coordinator)
            assert created.status_code == 201, created.text
            ids[name] = created.json()["id"]
        for name, district in {"conference_IV": "IV", "conference_I": "I"}.items():
            body = conference_body(district=district)
            created = await clients["conferences"].post("/conferences", json=body, headers=coordinator)
            assert created.status_code == 201, created.text
            ids[name] = created.json()["id"]

        # An invitation to resend, and the conference known to notifications (for its preview).
        async def an_invitation() -> str | None:
            found = await clients["conferences"].get(f"/conferences/{ids['conference_IV']}", headers=coordinator)
            return next((i["id"] for i in found.json()["invitations"]), None)

        ids["invitation_IV"] = await eventually(an_invitation)
        await eventually(lambda: outbox_empty(apps["conferences"]))
        await eventually(lambda: caught_up(infra.kafka_bootstrap, "notifications", CONFERENCES_TOPIC))
        yield Stack(infra, apps, clients, ids)

        # Stop only once everything caused is handled: a consumer stopped mid-batch may not stop.
        async def quiet() -> bool:
            relayed = all([await outbox_empty(app) for app in apps.values()])
            return relayed and all(
                [await caught_up(infra.kafka_bootstrap, group, *topics) for group, topics in CONSUMED.items()]
            )

        await eventually(quiet, timeout=120)
    finally:
        for client in clients.values():
            await client.aclose()
        for lifespan in reversed(lifespans):
            await lifespan.__aexit__(None, None, None)


OPEN = [
    ("actors", "GET", "/districts"),
    *((s, "GET", p) for s in ("actors", "conferences", "notifications") for p in ("/health/live", "/metrics")),
    *((s, "GET", p) for s in ("actors", "conferences", "notifications") for p in ("/asyncapi", "/openapi.json")),
    ("actors", "GET", "/docs"),
]

TEST_MAIL = {"email": "koordination@stadt.example.org", "language": "de"}
NEW_ACTOR_IV = actor_body(districts=["IV"])
NEW_ACTOR_IV_III = actor_body(districts=["IV", "III"])
# The CSV import: the role is checked per request, the districts per row (a row outside a quarter
# manager's districts is refused in the answer, which is still 200).
IMPORT_IV = b"name;kind;districts;email\r\nRunder Tisch Dellwig;round_table;IV;dellwig@runder-tisch.example.org\r\n"
REGISTRY_READERS = {"coordinator": 200, "qm_IV": 200, "qm_I": 200, "qm_IV_III": 200}
# (service, method, path, body) -> the status each caller gets; callers not named get 403.
RULES: list[tuple[str, str, str, Any, dict[str, int]]] = [
    ("actors", "POST", "/actors", NEW_ACTOR_IV, {"coordinator": 201, "qm_IV": 201, "qm_IV_III": 201}),
    ("actors", "POST", "/actors", NEW_ACTOR_IV_III, {"coordinator": 201, "qm_IV_III": 201}),
    ("actors", "GET", "/actors/{actor_IV}", None, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    ("actors", "GET", "/actors/{actor_IV_III}", None, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    ("actors", "GET", "/actors/{actor_I}", None, {"coordinator": 200, "qm_I": 200}),
    ("actors", "GET", "/actors?district=IV", None, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    ("actors", "GET", "/actors?district=I", None, {"coordinator": 200, "qm_I": 200}),
    ("actors", "GET", "/actors", None, {"coordinator": 200, "qm_IV": 200, "qm_I": 200, "qm_IV_III": 200}),
    ("actors", "GET", "/actors/import/template", None, REGISTRY_READERS),
    ("actors", "POST", "/actors/import?dry_run=true", IMPORT_IV, REGISTRY_READERS),
    ("actors", "POST", "/actors/import", IMPORT_IV, REGISTRY_READERS),
    ("actors", "GET", "/actors/export.csv", None, REGISTRY_READERS),
    ("actors", "GET", "/actors/export.csv?district=I", None, {"coordinator": 200, "qm_I": 200}),
    ("actors", "PATCH", "/actors/{actor_IV}", {"language": "en"}, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    # before a change: every district of the actor must be theirs; after it too
    ("actors", "PATCH", "/actors/{actor_IV_III}", {"language": "en"}, {"coordinator": 200, "qm_IV_III": 200}),
    ("actors", "PATCH", "/actors/{actor_IV}", {"districts": ["IV", "III"]}, {"coordinator": 200, "qm_IV_III": 200}),
    ("actors", "PATCH", "/actors/{actor_I}", {"districts": ["IV"]}, {"coordinator": 200}),
    ("actors", "DELETE", "/actors/{actor_IV}", None, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    ("actors", "DELETE", "/actors/{actor_IV_III}", None, {"coordinator": 200, "qm_IV_III": 200}),
    ("actors", "PUT", "/districts/IV/team", {"members": []}, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    ("actors", "GET", "/districts/IV/team", None, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    # the district is checked before the body: a bad body is 422 only for those who may set the team
    ("actors", "PUT", "/districts/I/team", {"members": 5}, {"coordinator": 422, "qm_I": 422}),
    ("conferences", "POST", "/conferences", conference_body(), {"coordinator": 201}),
    ("conferences", "POST", "/conferences", conference_body(draft=True), {"coordinator": 201}),
    # scheduled already: publishing it again answers 200 and changes nothing
    ("conferences", "POST", "/conferences/{conference_IV}/publish", None, {"coordinator": 200}),
    (
        "conferences",
        "POST",
        "/conferences/{conference_IV}/invitations/{invitation_IV}/resend",
        None,
        {"coordinator": 202},
    ),
    # changes, cancellation and the nudge: coordinators only (a cancelled conference is still read
    # and listed as before, so the rules hold in any order)
    ("conferences", "PATCH", "/conferences/{conference_IV}", {"title": "Integrationskonferenz"}, {"coordinator": 200}),
    ("conferences", "DELETE", "/conferences/{conference_I}?reason=Raum", None, {"coordinator": 200}),
    ("conferences", "POST", "/conferences/{conference_IV}/reminders", None, {"coordinator": 202}),
    ("conferences", "GET", "/conferences/{conference_IV}", None, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    ("conferences", "GET", "/conferences/{conference_I}", None, {"coordinator": 200, "qm_I": 200}),
    ("conferences", "GET", "/conferences?district=IV", None, {"coordinator": 200, "qm_IV": 200, "qm_IV_III": 200}),
    ("conferences", "GET", "/conferences", None, {"coordinator": 200, "qm_IV": 200, "qm_I": 200, "qm_IV_III": 200}),
    ("notifications", "GET", "/deliveries?conference_id={conference_IV}", None, {"coordinator": 200, "operator": 200}),
    ("notifications", "GET", "/conferences/{conference_IV}/preview?language=en", None, {"coordinator": 200}),
    ("notifications", "POST", "/conferences/{conference_IV}/test-mail", TEST_MAIL, {"coordinator": 202}),
    # operations (issue 14): operators alone, on every service; the answers hold no personal data.
    # No dead letter exists here, so a replay finds none (404) once the role is allowed.
    *(
        (service, "GET", path, None, {"operator": 200})
        for service in ("actors", "conferences", "notifications")
        for path in ("/operations/dead-letters", "/operations/outbox", "/operations/consumers")
    ),
    ("notifications", "POST", "/operations/dead-letters/0/replay", None, {"operator": 404}),
    # personal data (issue 12): the data-protection officer alone; the registry's roles get 403
    ("actors", "GET", "/actors/{actor_IV}/audit", None, {"data_protection": 200}),
    ("actors", "GET", "/actors/{actor_IV_III}/export", None, {"data_protection": 200}),
    ("conferences", "GET", "/actors/{actor_IV}/export", None, {"data_protection": 200}),
    ("notifications", "GET", "/actors/{actor_IV}/export", None, {"data_protection": 200}),
    # last: it erases actor_I for good (a second request answers the same)
    ("actors", "POST", "/actors/{actor_I}/erasure", None, {"data_protection": 200}),
    ("actors", "GET", "/actors/{actor_I}/erasure", None, {"data_protection": 200}),
]


async def test_open_endpoints_need_no_token(stack: Stack) -> None:
    for service, method, path in OPEN:
        response = await stack.call(service, ANONYMOUS, method, path)
        assert response.status_code == 200, (service, path, response.status_code)


async def test_every_role_on_every_endpoint_and_district(stack: Stack) -> None:
    """Each rule is tried by every caller, on the data as the coordinator set it up (a change
    allowed for one caller is undone by nothing, so the rules are written to hold in any order)."""
    failures: list[str] = []
    for service, method, path, body, allowed in RULES:
        for caller in [ANONYMOUS, *CALLERS]:
            expected = 401 if caller == ANONYMOUS else allowed.get(caller, 403)
            if service == "actors" and method in {"PATCH", "DELETE"} and expected != 403:
                continue  # the allowed changes run below, on actors of their own
            response = await stack.call(service, caller, method, path, body)
            if response.status_code != expected:
                failures.append(f"{caller} {method} {path}: {response.status_code}, expected {expected}")
            elif expected == 401:
                assert response.headers["WWW-Authenticate"] == "Bearer"
    assert not failures, "\n".join(failures)


async def test_allowed_changes_succeed(stack: Stack) -> None:
    for service, method, path, body, allowed in RULES:
        if service != "actors" or method not in {"PATCH", "DELETE"}:
            continue
        for caller, expected in allowed.items():
            # each caller changes a fresh copy of the actor the rule names
            source = await stack.call("actors", "coordinator", "GET", path)
            copy = {k: source.json()[k] for k in ("kind", "districts", "email", "language")}
            created = await stack.call("actors", "coordinator", "POST", "/actors", actor_body(**copy))
            fresh = "/actors/" + created.json()["id"]
            response = await stack.call(service, caller, method, fresh, body)
            assert response.status_code == expected, (caller, method, path, body, response.text)


async def test_a_quarter_manager_imports_only_rows_of_their_districts(stack: Stack) -> None:
    refused = await stack.call("actors", "qm_I", "POST", "/actors/import", IMPORT_IV)
    assert [r["status"] for r in refused.json()["rows"]] == ["invalid"]
    created = await stack.call("actors", "qm_IV", "POST", "/actors/import", IMPORT_IV)
    assert [r["status"] for r in created.json()["rows"]] == ["created"]
    again = await stack.call("actors", "coordinator", "POST", "/actors/import", IMPORT_IV)
    assert [r["status"] for r in again.json()["rows"]] == ["exists"]


async def test_a_quarter_manager_lists_only_what_touches_their_districts(stack: Stack) -> None:
    actors_seen = (await stack.call("actors", "qm_I", "GET", "/actors")).json()
    assert {a["id"] for a in actors_seen} == {stack.ids["actor_I"]}
    actors_seen = (await stack.call("actors", "qm_IV", "GET", "/actors")).json()
    assert {a["id"] for a in actors_seen} == {stack.ids["actor_IV"], stack.ids["actor_IV_III"]}
    conferences_seen = (await stack.call("conferences", "qm_I", "GET", "/conferences")).json()
    assert {c["id"] for c in conferences_seen} == {stack.ids["conference_I"]}
    everything = (await stack.call("actors", "coordinator", "GET", "/actors")).json()
    assert len(everything) == 3
    # In pages, too: the district filter is part of the query, so a quarter manager's page is full
    # and announces no page of someone else's conferences.
    only_theirs = await stack.call("conferences", "qm_IV_III", "GET", "/conferences?limit=1")
    assert [c["id"] for c in only_theirs.json()] == [stack.ids["conference_IV"]] and "next" not in only_theirs.links
    first = await stack.call("conferences", "coordinator", "GET", "/conferences?limit=1")
    second = await stack.clients["conferences"].get(first.links["next"]["url"], headers=stack.headers("coordinator"))
    assert {c["id"] for c in first.json() + second.json()} == {stack.ids["conference_IV"], stack.ids["conference_I"]}
    assert "next" not in second.links


async def test_401_and_403_come_before_the_body_is_validated(stack: Stack) -> None:
    actors_client, conferences_client = stack.clients["actors"], stack.clients["conferences"]
    for body in ({"name": 5}, {}, [1, 2]):
        assert (await actors_client.post("/actors", json=body)).status_code == 401
        assert (await conferences_client.post("/conferences", json=body)).status_code == 401
    not_json = await actors_client.post("/actors", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 401
    headers = stack.headers("qm_IV")
    assert (await conferences_client.post("/conferences", json={"title": 5}, headers=headers)).status_code == 403
    conference = f"/conferences/{stack.ids['conference_IV']}"
    bad_change: dict[str, Any] = {"title": 5}
    for method, path, change in (
        ("PATCH", conference, bad_change),
        ("DELETE", f"{conference}?reason=%0A", None),
        ("POST", f"{conference}/reminders", None),
    ):
        assert (await conferences_client.request(method, path, json=change)).status_code == 401, (method, path)
        assert (await conferences_client.request(method, path, json=change, headers=headers)).status_code == 403
    assert (await conferences_client.patch(conference, json={"title": 5}, headers=stack.headers("coordinator"))).json()[
        "detail"
    ][0]["loc"] == ["body", "title"]
    test_mail = f"/conferences/{stack.ids['conference_IV']}/test-mail"
    notifications_client = stack.clients["notifications"]
    assert (await notifications_client.post(test_mail, json={"email": 5})).status_code == 401
    assert (await notifications_client.post(test_mail, json={"email": 5}, headers=headers)).status_code == 403
    coordinator = stack.headers("coordinator")
    # with the right role, the body is validated strictly: a 422 names the field
    for field, bad in {
        "email": {"email": "not an address"},
        "language": {"email": "a@example.org", "language": "fr"},
        "bcc": {"email": "a@example.org", "bcc": "b@example.org"},
    }.items():
        refused = await notifications_client.post(test_mail, json=bad, headers=coordinator)
        assert refused.status_code == 422 and field in refused.json()["detail"][0]["loc"], refused.text
    assert (
        await actors_client.patch("/actors/x", json={"name": None}, headers=stack.headers("operator"))
    ).status_code == 403
    # the role is checked before the actor is looked for, and before any body
    for caller in ("coordinator", "qm_IV", "operator"):
        for method, path in (
            ("GET", "/actors/nope/audit"),
            ("GET", "/actors/nope/export"),
            ("POST", "/actors/nope/erasure"),
        ):
            answer = await actors_client.request(method, path, json={"x": 1}, headers=stack.headers(caller))
            assert answer.status_code == 403, (caller, method, path)
    officer = stack.headers("data_protection")
    assert (await actors_client.post("/actors/nope/erasure", json={"x": 1})).status_code == 401
    assert (await actors_client.post("/actors/nope/erasure", headers=officer)).status_code == 404
    # with the right role, the body is validated as before
    assert (await actors_client.post("/actors", json={"name": 5}, headers=stack.headers("qm_IV"))).status_code == 422


async def test_events_name_the_subject_who_caused_them(stack: Stack) -> None:
    created = await stack.call("actors", "qm_IV", "POST", "/actors", NEW_ACTOR_IV)
    actor_id = created.json()["id"]
    await eventually(lambda: outbox_empty(stack.apps["actors"]))
    found = envelopes(await read_to_end(stack.infra.kafka_bootstrap, ACTORS_TOPIC))
    mine = [e for e in found if e.aggregate_id == actor_id]
    assert [e.initiated_by for e in mine] == ["subject-qm_IV"]
    assert {e.initiated_by for e in found if e.aggregate_id != actor_id} == {"subject-coordinator"}


# --- tokens -------------------------------------------------------------------------------------


def _claims(issuer: LocalIssuer, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "roles": ["coordinator"],
        "districts": [],
    }
    return {k: v for k, v in {**claims, **overrides}.items() if v is not None}


def _alg_none(claims: dict[str, Any]) -> str:
    """An unsigned token (header alg "none", empty signature), as an attacker writes it."""

    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _other_key(issuer: LocalIssuer, claims: dict[str, Any]) -> str:
    kid = jwks(issuer.key_path)["keys"][0]["kid"]  # the issuer's key id, another key's signature
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})


async def test_tokens_that_are_not_valid_get_401(stack: Stack, issuer: LocalIssuer) -> None:
    now = int(time.time())
    refused = {
        "expired": issuer.sign(_claims(issuer, exp=now - 120, iat=now - 600, nbf=now - 600)),
        "not yet valid": issuer.sign(_claims(issuer, nbf=now + 600)),
        "wrong signature": _other_key(issuer, _claims(issuer)),
        "wrong audience": issuer.sign(_claims(issuer, aud="account")),
        "wrong issuer": issuer.sign(_claims(issuer, iss="http://127.0.0.1:1/local-other")),
        "no expiry": issuer.sign(_claims(issuer, exp=None)),
        "alg none": _alg_none(_claims(issuer)),
        "unknown key id": issuer.sign(_claims(issuer), headers={"kid": "rotated-away"}),
        "roles not a list": issuer.sign(_claims(issuer, roles="coordinator")),
        "garbage": "not.a.token",
    }
    client = stack.clients["actors"]
    for case, token in refused.items():
        response = await client.get("/actors", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, case
        assert response.headers["WWW-Authenticate"] == "Bearer", case
    assert (await client.get("/actors", headers={"Authorization": "Basic Zm9vOmJhcg=="})).status_code == 401
    accepted = await client.get("/actors", headers={"Authorization": f"Bearer {issuer.sign(_claims(issuer))}"})
    assert accepted.status_code == 200


async def test_a_keycloak_realm_token_is_accepted_and_keys_may_rotate(
    infra: Infrastructure, database_name: str, tmp_path: Path
) -> None:
    """RS256 as Keycloak signs, with the claims of our realm's access token; the realm's mappers
    put roles and districts at the top level. Then the realm gets a new key."""
    keycloak, http = serve_issuer(tmp_path / "realm", free_port(), kind="rsa")
    try:
        app = actors.app.build(
            settings_for(
                actors.settings.Settings,
                infra,
                database_name,
                auth_issuer=keycloak.issuer,
                auth_jwks_url=keycloak.jwks_url,
            )
        )
        # as the app makes it, but fetching the keys again at once for an unknown key id
        app.state.token_verifier = TokenVerifier(keycloak.issuer, "quartier", keycloak.jwks_url, refetch_cooldown=0)
        # The claims exactly as the compose file's realm issues them to demo-manager-iv
        # (tests/unit/test_keycloak_realm.py keeps the fixture equal to the realm), with fresh times and
        # this test's issuer URL in place of Keycloak's.
        now = int(time.time())
        realm_token = json.loads(KEYCLOAK_TOKEN_CLAIMS.read_text(encoding="utf-8"))
        assert realm_token["roles"] == ["quarter_manager"] and realm_token["districts"] == ["IV"]
        realm_token |= {"exp": now + 300, "iat": now, "auth_time": now - 5, "iss": keycloak.issuer}
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
        ):
            headers = {"Authorization": f"Bearer {keycloak.sign(realm_token, headers={'typ': 'JWT'})}"}
            assert (await client.get("/actors?district=IV", headers=headers)).status_code == 200
            assert (await client.get("/actors?district=I", headers=headers)).status_code == 403
            # the realm rotates its key: the JWKS now holds the new one, which is fetched at once
            old_kid = jwks(keycloak.key_path)["keys"][0]["kid"]
            (tmp_path / "realm" / "signing-key.pem").unlink()
            LocalIssuer.at(tmp_path / "realm", 0, kind="rsa")
            assert jwks(keycloak.key_path)["keys"][0]["kid"] != old_kid
            rotated = {"Authorization": f"Bearer {keycloak.sign(realm_token)}"}
            assert (await client.get("/actors?district=IV", headers=rotated)).status_code == 200
    finally:
        http.shutdown()
