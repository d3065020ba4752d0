"""The personal links every mail carries: the answer link ``{PUBLIC_BASE_URL}/rsvp/{token}`` and
the unsubscribe link ``{PUBLIC_BASE_URL}/unsubscribe/{token}``.

Contract: ``token = links.sign(invitation_id, conference.ends_at, key)`` (``quartier_shared.links``),
so the link names the invitation and nothing personal, stops working when the conference ends,
and only the conferences service's public key (``LINK_VERIFY_KEY``) verifies it. The unsubscribe
token is ``links.sign(actor_id, issued_at + UNSUBSCRIBE_VALIDITY, key, purpose=UNSUBSCRIBE)``: it
names the actor only and works for a year from the mail.

The key (``LINK_SIGNING_KEY``) is checked when the service starts (``check``, bound in app.py):
without a usable key the service refuses to start, because every mail it sends needs a link that
works. Building the app needs no key (the AsyncAPI document is made from it without one).

A link opens someone's answer: it is never logged, and never part of an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from quartier_shared import links


class LinkKeyMissing(RuntimeError):
    """The service cannot sign personal links, so it must not start."""


@dataclass(frozen=True)
class PersonalLinks:
    base_url: str  # the public origin of the answer page, without a trailing slash
    signing_key: SecretStr | None  # PEM text or the path of a PEM file

    @classmethod
    def of(cls, base_url: str, signing_key: SecretStr | None) -> PersonalLinks:
        return cls(base_url.rstrip("/"), signing_key)

    def check(self) -> None:
        """Raises ``LinkKeyMissing``, with what to do, unless the key is set and loads."""
        if self.signing_key is None or not self.signing_key.get_secret_value().strip():
            raise LinkKeyMissing(
                "LINK_SIGNING_KEY is not set: the notifications service signs the personal answer link in "
                "every mail and does not start without it. Set it to the PEM text, or the path of a PEM file, "
                "of an Ed25519 private key (`make run` makes one under var/; compose mounts it as a secret)."
            )
        try:
            self._key()
        except (OSError, ValueError, TypeError) as exc:
            # The error names the problem, never the key's content.
            raise LinkKeyMissing(f"LINK_SIGNING_KEY cannot be loaded: {type(exc).__name__}: {exc}") from None

    def for_invitation(self, invitation_id: str, expires_at: datetime) -> str:
        """The invitation's answer link, valid until ``expires_at`` (the conference's end)."""
        return f"{self.base_url}/rsvp/{links.sign(invitation_id, expires_at, self._key())}"

    def for_unsubscribe(self, actor_id: str, issued_at: datetime) -> str:
        """The actor's unsubscribe link, valid for a year from ``issued_at`` (the mail's time)."""
        expires_at = issued_at + links.UNSUBSCRIBE_VALIDITY
        token = links.sign(actor_id, expires_at, self._key(), purpose=links.UNSUBSCRIBE)
        return f"{self.base_url}/unsubscribe/{token}"

    def _key(self) -> Ed25519PrivateKey:
        if self.signing_key is None:
            raise LinkKeyMissing("LINK_SIGNING_KEY is not set")
        return links.load_private_key(self.signing_key.get_secret_value())  # cached per setting
