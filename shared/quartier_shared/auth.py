"""Who is calling: OIDC bearer tokens (JWT) verified against the issuer's JWKS, and the roles and
districts they grant.

Any OIDC identity provider works (Keycloak, Entra ID, ADFS): the token must be signed with one of
``ALGORITHMS`` by a key the issuer publishes at ``AUTH_JWKS_URL``, name ``AUTH_ISSUER`` as ``iss``
and ``AUTH_AUDIENCE`` (default ``quartier``) in ``aud``, and be within ``nbf``..``exp``. Roles are
read from the top-level ``roles`` claim (a list), districts from the top-level ``districts`` claim.

How a service uses it: ``protected_router()`` gives an ``APIRouter`` whose routes authenticate the
caller *before anything else* (before FastAPI reads or validates the body), so a request without
a valid token answers 401 with ``WWW-Authenticate: Bearer`` whatever its body holds. Each route
then names who may call it with ``dependencies=[allow(COORDINATOR, ...)]`` (403 otherwise, also
before the body is validated); district scope is checked with ``require_within`` and
``may_read``. Routes of a plain ``APIRouter`` (health, metrics, AsyncAPI, the catalogue) stay open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from .logging import bind_contextvars, get_logger

log = get_logger(__name__)

# Asymmetric algorithms only: a shared secret (HS*) would let every service mint tokens, and
# "none" is never accepted. The token's header must name one of these.
ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 30  # clock skew between the identity provider and us
JWKS_CACHE_SECONDS = 300  # keys are fetched again after this, and for an unknown key id...
JWKS_REFETCH_COOLDOWN_SECONDS = 10.0  # ...at most once in this long (tokens with made-up ids cost little)

COORDINATOR = "coordinator"
QUARTER_MANAGER = "quarter_manager"
OPERATOR = "operator"
DATA_PROTECTION = "data_protection"
ROLES = (COORDINATOR, QUARTER_MANAGER, OPERATOR, DATA_PROTECTION)


@dataclass(frozen=True)
class Principal:
    """The caller: an opaque subject id (never a name), its roles and its districts."""

    subject: str
    roles: frozenset[str]
    districts: frozenset[str]

    def has(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_coordinator(self) -> bool:
        return COORDINATOR in self.roles


class Unauthenticated(Exception):
    """The token is missing or not acceptable (the reason is for the log, not the caller)."""


class TokenVerifier:
    """Verifies bearer tokens of one issuer. The JWKS is cached, and fetched again when a token
    names a key id it does not hold (the issuer rotated its keys)."""

    def __init__(
        self, issuer: str, audience: str, jwks_url: str, refetch_cooldown: float = JWKS_REFETCH_COOLDOWN_SECONDS
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._jwks = jwt.PyJWKClient(
            jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=5, cooldown_duration=refetch_cooldown
        )

    def verify(self, token: str) -> Principal:
        """The token's principal; ``Unauthenticated`` when it is not valid. Blocks on a JWKS fetch:
        call it from a thread (``verify_async``)."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise Unauthenticated(f"algorithm {header.get('alg')!r} is not accepted")
            key = self._jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise IdentityProviderUnavailable(str(exc)) from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"{type(exc).__name__}: {exc}") from None
        return principal_from(claims)

    async def verify_async(self, token: str) -> Principal:
        return await asyncio.to_thread(self.verify, token)


class IdentityProviderUnavailable(Exception):
    """The issuer's JWKS could not be fetched (and no cached key fits)."""


def principal_from(claims: dict[str, Any]) -> Principal:
    roles, districts = claims.get("roles", []), claims.get("districts", [])
    if not _strings(roles) or not _strings(districts) or not isinstance(claims.get("sub"), str):
        raise Unauthenticated("claims sub, roles or districts have the wrong shape")
    return Principal(claims["sub"], frozenset(roles), frozenset(districts))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# --- FastAPI --------------------------------------------------------------------------------------

_UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=_UNAUTHENTICATED)


def verifier_of(request: Request) -> TokenVerifier | None:
    """The app's verifier (``app.state.token_verifier``), made from its settings on first use."""
    state = request.app.state
    verifier: TokenVerifier | None = getattr(state, "token_verifier", None)
    if verifier is None:
        settings = state.runtime.settings
        if not settings.auth_issuer or not settings.auth_jwks_url:
            return None
        verifier = state.token_verifier = TokenVerifier(
            settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url
        )
    return verifier


async def authenticate(request: Request) -> Principal:
    """The caller of ``request``, or a 401 (503 when the identity provider cannot be reached)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("a bearer token is required")
    verifier = verifier_of(request)
    if verifier is None:
        log.error("auth_not_configured", hint="set AUTH_ISSUER and AUTH_JWKS_URL")
        raise _unauthorized("this service accepts no tokens: AUTH_ISSUER and AUTH_JWKS_URL are not set")
    try:
        principal = await verifier.verify_async(token.strip())
    except Unauthenticated as exc:
        log.info("token_refused", reason=str(exc)[:200])
        raise _unauthorized("the token is not valid") from None
    except IdentityProviderUnavailable:
        log.warning("identity_provider_unavailable")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="The identity provider is not reachable right now; please try again shortly.",
            headers={"Retry-After": "5"},
        ) from None
    request.state.principal = principal
    bind_contextvars(initiated_by=principal.subject)
    return principal


class AuthenticatedRoute(APIRoute):
    """A route that authenticates its caller first: before the body is read, parsed or validated."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            await authenticate(request)
            return await handler(request)

        return authenticated


_bearer = HTTPBearer(auto_error=False, description="an OIDC access token of the city's identity provider")


def current_principal(request: Request, _: Any = Depends(_bearer)) -> Principal:
    """The authenticated caller (``AuthenticatedRoute`` has verified the token already); as a
    dependency it also shows the bearer scheme in the OpenAPI document."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # a route outside a protected router: never grant anything
        raise _unauthorized("a bearer token is required")
    return principal


def protected_router(*, dependencies: Sequence[Any] = (), **kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose every route needs a valid token (``AuthenticatedRoute``), checked
    before its other ``dependencies``."""
    return APIRouter(route_class=AuthenticatedRoute, dependencies=[Depends(current_principal), *dependencies], **kwargs)


def allow(*roles: str) -> Any:
    """A route dependency: the caller must hold one of ``roles`` (else 403). It runs before the
    body is validated."""

    def check(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.has(*roles):
            raise forbidden()
        return principal

    return Depends(check)


def forbidden(detail: str = "your role does not allow this") -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def require_within(principal: Principal, districts: Iterable[str]) -> None:
    """403 unless the caller may change what lies in ``districts``: a coordinator anywhere, a
    quarter manager only when every one of them is one of theirs."""
    if principal.is_coordinator:
        return
    outside = set(districts) - principal.districts
    if not principal.has(QUARTER_MANAGER) or outside:
        raise forbidden(f"outside your districts: {', '.join(sorted(outside))}" if outside else "not your district")


def may_read(principal: Principal, districts: Collection[str]) -> bool:
    """Whether the caller may read what belongs to ``districts``: a coordinator always, a quarter
    manager when one of them is theirs."""
    return principal.is_coordinator or (
        principal.has(QUARTER_MANAGER) and not principal.districts.isdisjoint(districts)
    )


def readable_districts(principal: Principal) -> frozenset[str] | None:
    """The districts whose records the caller may list, for a list's query: None for all (a
    coordinator). Lists filter in the query, so their pages stay full and their order holds."""
    if principal.is_coordinator:
        return None
    return principal.districts if principal.has(QUARTER_MANAGER) else frozenset()


def require_readable(principal: Principal, districts: Collection[str]) -> None:
    if not may_read(principal, districts):
        raise forbidden("not your district")


def subject_of(request: Request) -> str | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return None if principal is None else principal.subject
