"""The Keycloak realm of the compose file (deploy/keycloak/quartier-realm.json) and the tokens it issues.

The realm defines the four roles of issue 9, the one client `quartier` (the audience of every service;
a public client, authorization code with PKCE S256 for the future portal, and the password grant for
the README's curl walk-through), the mappers that put the realm roles into a top-level `roles` claim
and the user attribute `districts` into a top-level `districts` claim, and the demo users.

``token_claims`` builds the payload of an access token exactly as this realm issues it (Keycloak 26,
password grant, scope openid). tests/fixtures/keycloak_token_claims.json holds it for demo-manager-iv,
unsigned, so that the token verification tests can sign it with their own key; a test here keeps the
file equal to what the realm gives.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from quartier_shared.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parents[2]
REALM_FILE = ROOT / "deploy" / "keycloak" / "quartier-realm.json"
FIXTURE = ROOT / "tests" / "fixtures" / "keycloak_token_claims.json"
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"

ROLES = {"coordinator", "quarter_manager", "operator", "data_protection"}
AUDIENCE = "quartier"
ISSUER = "http://localhost:8080/realms/quartier"  # KEYCLOAK_URL's default in docker-compose.yml
FIXTURE_USER = "demo-manager-iv"
# Fixed instants, so the file does not change: a test that signs the claims sets exp/iat/auth_time anew.
ISSUED_AT = 1_767_225_600  # 2026-01-01T00:00:00Z
# Stable ids, as Keycloak would generate them, derived from names so that the fixture is reproducible.
IDS = uuid.UUID("6f1e0c2a-5d1b-4c3e-9a7f-0b8d2e4c6a10")


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    data = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def client(realm: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in realm["clients"] if c["clientId"] == AUDIENCE]
    assert isinstance(found, dict)
    return found


def mapper(realm: dict[str, Any], kind: str) -> dict[str, str]:
    (found,) = [m for m in client(realm)["protocolMappers"] if m["protocolMapper"] == kind]
    assert found["protocol"] == "openid-connect"
    config = found["config"]
    assert isinstance(config, dict)
    return config


def user(realm: dict[str, Any], username: str) -> dict[str, Any]:
    (found,) = [u for u in realm["users"] if u["username"] == username]
    assert isinstance(found, dict)
    return found


def token_claims(realm: dict[str, Any], username: str) -> dict[str, Any]:
    """The access token payload this realm issues to ``username`` (password grant, scope openid)."""
    person = user(realm, username)
    the_client = client(realm)
    # fullScopeAllowed is off: a token carries only the realm roles the client's scope maps.
    in_scope = {r for m in realm["scopeMappings"] if m["client"] == AUDIENCE for r in m["roles"]}
    roles = [r for r in person["realmRoles"] if r in in_scope]
    claims: dict[str, Any] = {
        "exp": ISSUED_AT + int(realm["accessTokenLifespan"]),
        "iat": ISSUED_AT,
        "auth_time": ISSUED_AT,
        "jti": str(uuid.uuid5(IDS, f"jti:{username}")),
        "iss": f"{ISSUER.rsplit('/realms/', 1)[0]}/realms/{realm['realm']}",
        "aud": mapper(realm, "oidc-audience-mapper")["included.client.audience"],
        "sub": str(uuid.uuid5(IDS, f"user:{username}")),
        "typ": "Bearer",
        "azp": the_client["clientId"],
        "sid": str(uuid.uuid5(IDS, f"session:{username}")),
        "acr": "1",
        "allowed-origins": sorted({re.sub(r"/\*$", "", uri) for uri in the_client["redirectUris"]}),
        "realm_access": {"roles": roles},
        "scope": "openid email profile",
        "email_verified": person["emailVerified"],
        mapper(realm, "oidc-usermodel-realm-role-mapper")["claim.name"]: roles,
        "name": f"{person['firstName']} {person['lastName']}",
        "preferred_username": username,
        "given_name": person["firstName"],
        "family_name": person["lastName"],
        "email": person["email"],
    }
    districts = person.get("attributes", {}).get(mapper(realm, "oidc-usermodel-attribute-mapper")["user.attribute"])
    if districts:  # Keycloak leaves a claim out when the attribute is unset
        claims[mapper(realm, "oidc-usermodel-attribute-mapper")["claim.name"]] = districts
    return claims


# --- the realm ------------------------------------------------------------------------------------


def test_the_realm_has_exactly_the_four_roles(realm: dict[str, Any]) -> None:
    assert realm["realm"] == "quartier" and realm["enabled"] is True
    assert {r["name"] for r in realm["roles"]["realm"]} == ROLES
    assert not any(r.get("composite") for r in realm["roles"]["realm"])
    assert realm["registrationAllowed"] is False, "nobody signs themselves up for a role"
    assert realm["sslRequired"] == "external"
    assert 60 <= realm["accessTokenLifespan"] <= 900


def test_the_client_is_public_with_pkce_and_its_tokens_carry_only_the_four_roles(realm: dict[str, Any]) -> None:
    the_client = client(realm)
    assert the_client["publicClient"] is True and the_client["enabled"] is True
    assert the_client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert the_client["standardFlowEnabled"] is True and the_client["implicitFlowEnabled"] is False
    assert the_client["serviceAccountsEnabled"] is False
    assert all(not uri.endswith("//*") and uri != "*" for uri in the_client["redirectUris"])
    assert the_client["fullScopeAllowed"] is False
    (scope,) = realm["scopeMappings"]
    assert scope["client"] == AUDIENCE and set(scope["roles"]) == ROLES


def test_the_mappers_put_roles_districts_and_the_audience_into_the_access_token(realm: dict[str, Any]) -> None:
    audience = mapper(realm, "oidc-audience-mapper")
    assert audience["included.client.audience"] == AUDIENCE and audience["access.token.claim"] == "true"

    roles = mapper(realm, "oidc-usermodel-realm-role-mapper")
    assert roles["claim.name"] == "roles" and roles["multivalued"] == "true"
    assert roles["access.token.claim"] == "true" and roles["jsonType.label"] == "String"

    districts = mapper(realm, "oidc-usermodel-attribute-mapper")
    assert districts["user.attribute"] == "districts" and districts["claim.name"] == "districts"
    assert districts["multivalued"] == "true" and districts["access.token.claim"] == "true"
    assert districts["jsonType.label"] == "String"
    # Top-level claims: a dot in claim.name would nest them (realm_access.roles style).
    assert "." not in roles["claim.name"] and "." not in districts["claim.name"]


def test_the_user_profile_declares_districts_and_only_administrators_set_them(realm: dict[str, Any]) -> None:
    """Keycloak 24+ drops undeclared user attributes, and a user must not widen their own districts."""
    (provider,) = realm["components"]["org.keycloak.userprofile.UserProfileProvider"]
    (config,) = provider["config"]["kc.user.profile.config"]
    profile = json.loads(config)
    attributes = {a["name"]: a for a in profile["attributes"]}
    assert {"username", "email", "firstName", "lastName"} <= set(attributes)
    districts = attributes["districts"]
    assert districts["multivalued"] is True
    assert districts["permissions"] == {"view": ["admin"], "edit": ["admin"]}
    assert "unmanagedAttributePolicy" not in profile, "undeclared attributes stay off"
    pattern = re.compile(districts["validations"]["pattern"]["pattern"])
    assert all(pattern.fullmatch(code) for code in load_catalogue().district_codes)


def test_demo_users_one_per_role_and_a_quarter_manager_for_iv(realm: dict[str, Any]) -> None:
    users = realm["users"]
    codes = load_catalogue().district_codes
    by_role: dict[str, list[str]] = {}
    for person in users:
        assert person["enabled"] is True and person["emailVerified"] is True and not person["requiredActions"]
        assert re.fullmatch(r"[a-z0-9.-]+@example\.org", person["email"]), person["email"]
        assert set(person["realmRoles"]) <= ROLES and len(person["realmRoles"]) == 1
        (credential,) = person["credentials"]
        assert credential["type"] == "password" and credential["temporary"] is False
        assert credential["value"] == f"{person['username']}-password", "the README documents this rule"
        districts = person.get("attributes", {}).get("districts", [])
        if "quarter_manager" in person["realmRoles"]:
            assert districts and set(districts) <= codes, person["username"]
        else:
            assert not districts, f"{person['username']}: districts mean nothing without quarter_manager"
        for role in person["realmRoles"]:
            by_role.setdefault(role, []).append(person["username"])
    assert set(by_role) == ROLES
    assert user(realm, "demo-manager-iv")["attributes"]["districts"] == ["IV"]
    assert len({p["username"] for p in users}) == len(users) and len({p["email"] for p in users}) == len(users)


def test_the_compose_file_points_the_services_at_this_realm(realm: dict[str, Any]) -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    env = compose["x-service-env"]
    assert env["AUTH_ISSUER"] == "${KEYCLOAK_URL:-http://localhost:8080}/realms/" + realm["realm"]
    assert env["AUTH_AUDIENCE"] == AUDIENCE
    assert env["AUTH_JWKS_URL"] == f"http://keycloak:8080/realms/{realm['realm']}/protocol/openid-connect/certs"
    assert compose["services"]["keycloak"]["environment"]["KC_HOSTNAME"] == "${KEYCLOAK_URL:-http://localhost:8080}"


# --- the tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["demo-coordinator", "demo-manager-iv", "demo-manager-ii-iii", "demo-operator"])
def test_a_token_carries_the_roles_and_districts_at_the_top(realm: dict[str, Any], username: str) -> None:
    claims = token_claims(realm, username)
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE and claims["azp"] == AUDIENCE
    assert claims["typ"] == "Bearer" and claims["exp"] > claims["iat"]
    assert isinstance(claims["roles"], list) and set(claims["roles"]) <= ROLES
    assert claims["roles"] == user(realm, username)["realmRoles"]
    if "quarter_manager" in claims["roles"]:
        assert isinstance(claims["districts"], list) and claims["districts"]
    else:
        assert "districts" not in claims


def test_the_fixture_is_what_the_realm_issues(realm: dict[str, Any]) -> None:
    expected = token_claims(realm, FIXTURE_USER)
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert stored == expected, f"regenerate {FIXTURE.relative_to(ROOT)}: python -m tests.unit.test_keycloak_realm"
    assert stored["roles"] == ["quarter_manager"] and stored["districts"] == ["IV"]


def write_fixture() -> None:
    realm = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    FIXTURE.write_text(json.dumps(token_claims(realm, FIXTURE_USER), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_fixture()
