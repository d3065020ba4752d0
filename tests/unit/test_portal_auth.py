"""The portal's sign-in pieces without a browser: the signed cookies, the session's rule for
buttons, the redirect target after sign-in, 422s turned into field errors, and the local issuer's
code flow (PKCE S256, codes used once, redirect URIs on this machine only)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import SecretStr

from portal.api_client import ApiError
from portal.app import build
from portal.oidc import Pending, challenge_of
from portal.session import SESSION_COOKIE, Session, Signer
from portal.settings import Settings
from portal.signin import _own_path
from quartier.issuer import LocalIssuer
from quartier.login import CodeFlow, LoginError


def test_a_signed_cookie_cannot_be_changed_or_moved_between_purposes() -> None:
    sessions, logins = Signer(b"key", "session"), Signer(b"key", "login")
    value = sessions.dumps({"subject": "demo-coordinator"})
    assert sessions.loads(value) == {"subject": "demo-coordinator"}
    _, mac = value.split(".")
    forged = Signer(b"key", "session").dumps({"subject": "someone-else"}).split(".")[0]
    assert sessions.loads(f"{forged}.{mac}") is None
    assert logins.loads(value) is None  # a session is not a sign-in state
    assert Signer(b"other key", "session").loads(value) is None
    for garbage in (None, "", "no-dot", "a.b.c", "x" * 9000):
        assert sessions.loads(garbage) is None


def test_a_session_runs_out_and_names_what_its_user_may_change() -> None:
    manager = Session("demo-manager-iv", ["quarter_manager"], ["IV"], "token", time.time() + 60)
    assert manager.may_change(["IV"]) and not manager.may_change(["IV", "III"]) and not manager.may_change(["III"])
    coordinator = Session("c", ["coordinator"], [], "token", time.time() + 60)
    assert coordinator.may_change(["III"])
    operator = Session("o", ["operator"], [], "token", time.time() + 60)
    assert not operator.keeps_registry and not operator.may_change(["IV"])
    assert Session.from_dict(manager.to_dict()) == manager
    assert Session.from_dict({**manager.to_dict(), "expires": time.time() - 1}) is None
    assert Session.from_dict({"subject": "only"}) is None
    assert manager.csrf_ok(manager.csrf) and not manager.csrf_ok(None) and not manager.csrf_ok("other")


@pytest.mark.parametrize(
    ("asked", "kept"),
    [("/actors?district=IV", "/actors?district=IV"), ("//evil.example.org", "/"), ("https://evil.example.org", "/")],
)
def test_after_sign_in_only_a_path_of_ours(asked: str, kept: str) -> None:
    assert _own_path(asked) == kept
    assert _own_path("/\\evil.example.org") == "/" and _own_path(None) == "/"


def test_422_errors_by_field() -> None:
    error = ApiError(
        422,
        [
            {"loc": ["body", "email"], "msg": "value is not a valid email address"},
            {"loc": ["body", "consent", "basis"], "msg": "bad"},
            {"loc": ["query", "cursor"], "msg": "not a cursor"},
        ],
    )
    assert error.field_errors() == {
        "email": "value is not a valid email address",
        "consent": "bad",
        "cursor": "not a cursor",
    }
    assert ApiError(403, "your role does not allow this").field_errors() == {}


def test_the_local_code_flow(tmp_path: Path) -> None:
    issuer = LocalIssuer.at(tmp_path, 1234)
    flow = CodeFlow(issuer.issuer, issuer.token)
    pending = Pending.fresh("/")
    request = {
        "response_type": "code",
        "client_id": "quartier",
        "redirect_uri": "http://127.0.0.1:8000/callback",
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": challenge_of(pending.verifier),
        "code_challenge_method": "S256",
    }
    page = flow.login_page(request)
    assert 'value="demo-manager-iv"' in page and 'value="demo-coordinator"' in page
    redirect = flow.authorize({**request, "user": "demo-manager-iv"})
    assert redirect.startswith("http://127.0.0.1:8000/callback?code=") and f"state={pending.state}" in redirect
    code = redirect.split("code=")[1].split("&")[0]
    redeem = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": request["redirect_uri"],
        "client_id": "quartier",
        "code_verifier": "wrong-verifier",
    }
    with pytest.raises(LoginError, match="code_verifier"):
        flow.token(redeem)
    with pytest.raises(LoginError, match="unknown"):  # a code is gone after one try, even a failed one
        flow.token({**redeem, "code_verifier": pending.verifier})
    code = flow.authorize({**request, "user": "demo-manager-iv"}).split("code=")[1].split("&")[0]
    tokens = flow.token({**redeem, "code": code, "code_verifier": pending.verifier})
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert (
        claims["sub"] == "demo-manager-iv" and claims["roles"] == ["quarter_manager"] and claims["districts"] == ["IV"]
    )
    assert claims["aud"] == "quartier" and claims["iss"] == issuer.issuer
    assert jwt.decode(tokens["id_token"], options={"verify_signature": False})["nonce"] == pending.nonce

    for refused in (
        {"redirect_uri": "https://evil.example.org/callback"},
        {"code_challenge_method": "plain"},
        {"code_challenge": "short"},
        {"response_type": "token"},
    ):
        with pytest.raises(LoginError):
            flow.login_page({**request, **refused})
    with pytest.raises(LoginError, match="unknown user"):
        flow.authorize({**request, "user": "admin"})


@pytest.mark.parametrize(
    ("roles", "path", "refusal"),
    [
        (["operator"], "/actors", "Ihre Rolle hat keinen Zugang zum Akteursverzeichnis."),
        (["operator"], "/conferences", None),
        (["quarter_manager"], "/conferences/new", None),
        (["coordinator"], "/operations", None),
    ],
)
async def test_a_role_that_does_not_reach_a_page_gets_403_saying_so(
    roles: list[str], path: str, refusal: str | None
) -> None:
    settings = Settings(session_secret=SecretStr("k" * 32), allowed_hosts="testserver")
    app = build(settings)
    session = Session("someone", roles, ["IV"], "token", time.time() + 60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        assert (await client.get(path)).headers["location"] == f"/login?next={path}"  # not signed in
        client.cookies.set(SESSION_COOKIE, app.state.portal.sessions.dumps(session.to_dict()))
        refused = await client.get(path, headers={"Accept-Language": "de"})
    assert refused.status_code == 403
    assert "Nicht erlaubt" in refused.text and (refusal is None or refusal in refused.text)
