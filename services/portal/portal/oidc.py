"""Sign-in with OpenID Connect: the authorization-code flow with PKCE (S256), as a public client.

``start()`` makes the state, nonce and code verifier, and the identity provider's authorization
URL (from its discovery document, fetched once); the three go into the short-lived sign-in cookie.
``finish()`` takes the code back, checks the state, redeems the code with the verifier at the
token endpoint, and verifies the access token exactly as the services do
(``quartier_shared.auth.TokenVerifier``: signature by the issuer's JWKS, issuer, audience, times),
so the session's roles and districts are the ones the services will grant.

Written on httpx and PyJWT (both in the lock) rather than authlib, which the lock does not hold.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from quartier_shared.auth import IdentityProviderUnavailable, TokenVerifier, Unauthenticated

from .session import Session


class SignInFailed(Exception):
    """The sign-in could not be finished (the message is for the log, never a token)."""


@dataclass(frozen=True)
class Pending:
    """A sign-in under way: what the callback must see again."""

    state: str
    nonce: str
    verifier: str
    next: str

    @classmethod
    def fresh(cls, next_path: str) -> Pending:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path)


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OidcClient:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        audience: str,
        redirect_uri: str,
        jwks_url: str | None,
        timeout: float,
        discovery_url: str | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.discovery_url = discovery_url or f"{self.issuer}/.well-known/openid-configuration"
        self.client_id = client_id
        self.audience = audience
        self.redirect_uri = redirect_uri
        self.jwks_url = jwks_url
        self.timeout = timeout
        self._discovery: dict[str, Any] | None = None
        self._verifier: TokenVerifier | None = None

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                answer = await client.get(self.discovery_url)
                answer.raise_for_status()
                found = answer.json()
            if found.get("issuer", "").rstrip("/") != self.issuer:
                raise SignInFailed("the discovery document names another issuer")
            self._discovery = found
        return self._discovery

    async def start(self, next_path: str) -> tuple[Pending, str]:
        pending = Pending.fresh(next_path)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid",
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge_of(pending.verifier),
            "code_challenge_method": "S256",
        }
        return pending, f"{(await self.discovery())['authorization_endpoint']}?{urlencode(query)}"

    async def finish(self, pending: Pending, code: str, state: str, session_minutes: int) -> Session:
        if not secrets.compare_digest(state, pending.state):
            raise SignInFailed("the state does not match the sign-in under way")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": pending.verifier,
        }
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            answer = await client.post((await self.discovery())["token_endpoint"], data=form)
        if answer.status_code != 200:
            raise SignInFailed(f"the token endpoint answered {answer.status_code}")
        token = answer.json().get("access_token")
        if not isinstance(token, str):
            raise SignInFailed("no access token in the answer")
        try:
            principal = await self._token_verifier(await self.discovery()).verify_async(token)
        except (Unauthenticated, IdentityProviderUnavailable) as exc:
            raise SignInFailed(f"the access token was refused: {type(exc).__name__}") from None
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)  # verified above
        return Session(
            subject=principal.subject,
            roles=sorted(principal.roles),
            districts=sorted(principal.districts),
            token=token,
            expires=min(float(exp), time.time() + session_minutes * 60),
        )

    def _token_verifier(self, discovery: dict[str, Any]) -> TokenVerifier:
        if self._verifier is None:
            jwks = self.jwks_url or discovery["jwks_uri"]
            self._verifier = TokenVerifier(self.issuer, self.audience, jwks)
        return self._verifier

    async def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser to sign out at the provider too (None if it names no such endpoint)."""
        try:
            endpoint = (await self.discovery()).get("end_session_endpoint")
        except (httpx.HTTPError, SignInFailed):
            return None
        if not endpoint:
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        return f"{endpoint}?{urlencode(query)}"
