"""The local issuer's sign-in (`make run` and the tests only): the OpenID Connect
authorization-code flow with PKCE, for the staff portal, with a page that lists demo users instead
of asking for a password.

- ``GET {issuer}/.well-known/openid-configuration``: discovery (authorization, token, JWKS URLs).
- ``GET {issuer}/authorize?response_type=code&client_id=…&redirect_uri=…&state=…
  &code_challenge=…&code_challenge_method=S256``: the page with one button per ``DEMO_USERS``.
  ``redirect_uri`` must be on 127.0.0.1 or localhost (this issuer is for one machine); PKCE S256
  is required.
- ``POST {issuer}/authorize`` (the button): a one-time code, valid ``CODE_SECONDS``, sent back to
  ``redirect_uri`` with the ``state``.
- ``POST {issuer}/token`` (``grant_type=authorization_code``, ``code``, ``redirect_uri``,
  ``client_id``, ``code_verifier``): the access token that ``LocalIssuer.token`` makes (the one
  the services verify), also as ``id_token`` with the ``nonce``. A code works once.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

CODE_SECONDS = 60
TOKEN_MINUTES = 60


@dataclass(frozen=True)
class DemoUser:
    username: str  # the token subject too, as the compose file's Keycloak realm names them
    label: str
    roles: tuple[str, ...]
    districts: tuple[str, ...] = ()


DEMO_USERS = (
    DemoUser("demo-coordinator", "Koordination (coordinator)", ("coordinator",)),
    DemoUser("demo-manager-iv", "Quartiermanagement Bezirk IV (quarter_manager)", ("quarter_manager",), ("IV",)),
    DemoUser("demo-operator", "Betrieb (operator)", ("operator",)),
    DemoUser("demo-data-protection", "Datenschutz (data_protection)", ("data_protection",)),
)
_USERS = {user.username: user for user in DEMO_USERS}


class LoginError(Exception):
    """A request of the flow that is refused (the message is the OAuth error's description)."""


@dataclass(frozen=True)
class _Grant:
    user: DemoUser
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires: float


class CodeFlow:
    """The codes handed out and not yet redeemed; thread-safe (the issuer serves on threads)."""

    def __init__(self, issuer: str, mint: Callable[..., str]) -> None:
        self.issuer = issuer
        self.mint = mint  # LocalIssuer.token
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks.json",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA", "RS256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    def login_page(self, query: Mapping[str, str]) -> str:
        _check_request(query)
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(query.get(k, ""))}">'
            for k in ("client_id", "redirect_uri", "state", "code_challenge", "nonce")
        )
        buttons = "".join(
            f'<li><button type="submit" name="user" value="{u.username}">{html.escape(u.label)}</button>'
            f" <code>{u.username}</code></li>"
            for u in DEMO_USERS
        )
        return (
            '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Anmeldung (lokal)</title></head>'
            "<body><main><h1>Anmeldung am lokalen Aussteller</h1>"
            "<p>Nur für <code>make run</code> und Tests: wählen Sie eine Demo-Person.</p>"
            f'<form method="post" action="{html.escape(self.issuer)}/authorize">{hidden}<ul>{buttons}</ul></form>'
            "</main></body></html>"
        )

    def authorize(self, form: Mapping[str, str]) -> str:
        """The redirect (URL) back to the client with a fresh code."""
        _check_request(form)
        user = _USERS.get(form.get("user", ""))
        if user is None:
            raise LoginError("unknown user")
        code = secrets.token_urlsafe(32)
        grant = _Grant(
            user,
            form["client_id"],
            form["redirect_uri"],
            form["code_challenge"],
            form.get("nonce") or None,
            time.monotonic() + CODE_SECONDS,
        )
        with self._lock:
            self._grants = {k: g for k, g in self._grants.items() if g.expires > time.monotonic()}
            self._grants[code] = grant
        separator = "&" if "?" in form["redirect_uri"] else "?"
        return form["redirect_uri"] + separator + urlencode({"code": code, "state": form.get("state", "")})

    def token(self, form: Mapping[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "authorization_code":
            raise LoginError("unsupported grant_type")
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # once, whatever follows
        if grant is None or grant.expires < time.monotonic():
            raise LoginError("unknown or expired code")
        if form.get("redirect_uri") != grant.redirect_uri or form.get("client_id") != grant.client_id:
            raise LoginError("redirect_uri or client_id differs from the authorization request")
        if _s256(form.get("code_verifier", "")) != grant.challenge:
            raise LoginError("code_verifier does not match the code_challenge")
        user = grant.user
        access = self.mint(user.roles, user.districts, subject=user.username, minutes=TOKEN_MINUTES)
        extra = {"nonce": grant.nonce} if grant.nonce else {}
        identity = self.mint(
            user.roles, user.districts, subject=user.username, minutes=TOKEN_MINUTES, aud=grant.client_id, **extra
        )
        return {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_MINUTES * 60, "id_token": identity}


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _check_request(params: Mapping[str, str]) -> None:
    if params.get("response_type", "code") != "code":
        raise LoginError("unsupported response_type")
    if not params.get("client_id"):
        raise LoginError("client_id missing")
    redirect = urlsplit(params.get("redirect_uri", ""))
    if redirect.scheme != "http" or redirect.hostname not in {"127.0.0.1", "localhost"}:
        raise LoginError("redirect_uri must be on this machine")
    if params.get("code_challenge_method", "S256") != "S256" or len(params.get("code_challenge", "")) < 43:
        raise LoginError("PKCE with S256 is required")
