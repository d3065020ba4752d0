"""The portal's cookies: the signed-in session, and the short-lived state of a sign-in under way.

Both are JSON, base64url, with an HMAC-SHA256 over them (``Signer``): the browser keeps them but
cannot change them. The session holds the access token (so the portal calls the APIs as the user),
the subject, roles and districts read from the verified token, when it ends, and the CSRF token
every form must send back (``csrf_ok``). Cookies are HttpOnly, SameSite=Lax (the identity
provider's redirect back is a cross-site navigation that must carry the sign-in state), and Secure
when the portal's public URL is https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

SESSION_COOKIE = "quartier_session"
LOGIN_COOKIE = "quartier_login"
LOGIN_SECONDS = 600


class Signer:
    def __init__(self, key: bytes, purpose: str) -> None:
        # one key, a derived one per purpose: a sign-in state is never taken for a session
        self.key = hmac.new(key, purpose.encode(), hashlib.sha256).digest()

    def dumps(self, document: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def loads(self, value: str | None) -> dict[str, Any] | None:
        """The document, or None when the value is missing, altered or not ours."""
        if not value or value.count(".") != 1 or len(value) > 8192:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            found = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    def _mac(self, body: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.key, body.encode(), hashlib.sha256).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Session:
    subject: str
    roles: list[str]
    districts: list[str]
    token: str
    expires: float  # epoch seconds: the earlier of the token's exp and the session's length
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def is_coordinator(self) -> bool:
        return "coordinator" in self.roles

    @property
    def keeps_registry(self) -> bool:
        return self.is_coordinator or "quarter_manager" in self.roles

    def may_change(self, districts: list[str]) -> bool:
        """What the actors service allows (api.py): a coordinator any actor, a quarter manager
        one whose districts all lie within theirs. The buttons follow it; the service decides."""
        return self.is_coordinator or ("quarter_manager" in self.roles and set(districts) <= set(self.districts))

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent or "", self.csrf)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, found: dict[str, Any] | None) -> Session | None:
        if found is None:
            return None
        try:
            session = cls(**found)
        except TypeError:
            return None
        return session if session.expires > time.time() else None
