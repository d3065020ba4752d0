"""Personal links: the signed token in ``{PUBLIC_BASE_URL}/rsvp/{token}`` that lets an invitee
answer without an account, and in ``{PUBLIC_BASE_URL}/unsubscribe/{token}`` that lets a recipient
withdraw their consent to mails.

The contract:
- The token is a JWT signed with Ed25519 (``EdDSA``). It names what the link is for (``aud``) and
  when it stops working (``exp``), and one id, nothing personal (no name, no address):
  ``ANSWER`` names the invitation (``inv``) and runs out at the conference's end; ``UNSUBSCRIBE``
  names the actor (``act``) and runs out a year after the mail (``UNSUBSCRIBE_VALIDITY``). A
  token of one purpose is never accepted for the other.
- Only the notifications service, which writes the mails, holds the private key
  (``LINK_SIGNING_KEY``); the conferences service, which serves the pages, holds the public key
  (``LINK_VERIFY_KEY``). So a page server that is broken into cannot mint links.
- ``verify`` tells a link that was never ours (``InvalidLink``: tampered, another key, another
  purpose, garbage) from one that was ours but has run out (``ExpiredLink``), because the pages
  answer 404 for the first and 410 for the second.

A key setting holds either the PEM text itself or the path of a PEM file (what a compose secret
mounts). ``generate_pair`` writes a fresh pair for ``make run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ANSWER = "quartier-answer"  # the answer page: names the invitation
UNSUBSCRIBE = "quartier-unsubscribe"  # the unsubscribe page: names the actor
UNSUBSCRIBE_VALIDITY = timedelta(days=365)
# The claim that carries the one id each purpose names.
_SUBJECT_CLAIM = {ANSWER: "inv", UNSUBSCRIBE: "act"}
ALGORITHM = "EdDSA"
PRIVATE_KEY_FILE = "link-signing-key.pem"
PUBLIC_KEY_FILE = "link-verify-key.pem"
MAX_TOKEN_LENGTH = 1024  # ours are about 200 characters; longer ones are not parsed at all


class InvalidLink(Exception):
    """Not a link we made for this purpose (tampered, another key, malformed)."""


class ExpiredLink(Exception):
    """A genuine link whose time is over."""


@dataclass(frozen=True)
class LinkClaims:
    subject_id: str  # the invitation's id (ANSWER) or the actor's (UNSUBSCRIBE)
    expires_at: datetime

    @property
    def invitation_id(self) -> str:
        return self.subject_id

    @property
    def actor_id(self) -> str:
        return self.subject_id


def sign(subject_id: str, expires_at: datetime, private_key: Ed25519PrivateKey, *, purpose: str = ANSWER) -> str:
    claims = {_SUBJECT_CLAIM[purpose]: subject_id, "aud": purpose, "exp": int(expires_at.timestamp())}
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


def verify(
    token: str, public_key: Ed25519PublicKey, *, purpose: str = ANSWER, now: datetime | None = None
) -> LinkClaims:
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidLink("too long")
    subject = _SUBJECT_CLAIM[purpose]
    try:
        # Expiry is checked below against ``now`` (a fake clock in tests), after the signature.
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=purpose,
            options={"require": [subject, "aud", "exp"], "verify_exp": False},
        )
    except jwt.PyJWTError as error:
        raise InvalidLink(type(error).__name__) from None
    if not isinstance(claims[subject], str) or not claims[subject] or not isinstance(claims["exp"], int):
        raise InvalidLink("malformed claims")
    expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        raise ExpiredLink(claims[subject])
    return LinkClaims(subject_id=claims[subject], expires_at=expires_at)


def _pem(setting: str) -> bytes:
    text = setting.strip()
    return text.encode() if text.startswith("-----BEGIN") else Path(text).read_bytes()


@cache
def load_private_key(setting: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(_pem(setting), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("LINK_SIGNING_KEY must be an Ed25519 private key")
    return key


@cache
def load_public_key(setting: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(_pem(setting))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("LINK_VERIFY_KEY must be an Ed25519 public key")
    return key


def generate_pair(folder: Path) -> tuple[Path, Path]:
    """The key pair in ``folder`` (private key readable by us only), made on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        private_path.touch(mode=0o600)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private_path, public_path
