from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from quartier_shared.services import CONFERENCES, NOTIFICATIONS
from quartier_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = NOTIFICATIONS.name
    port: int = NOTIFICATIONS.port
    mongodb_database: str = NOTIFICATIONS.database

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_from: str = "integration@essen.example.org"
    smtp_from_name: str = "Integrationskonferenzen Essen"
    smtp_username: str | None = None
    smtp_password: str | None = None
    # Transport security (``smtp.tls_options``): "starttls" (upgrade when the server offers it,
    # and insist when credentials are set), "implicit" (TLS from the first byte, port 465) or
    # "none". Unset: SMTP_STARTTLS decides as it always did (true: insist on STARTTLS, false:
    # none); neither set: "starttls".
    smtp_tls: Literal["starttls", "implicit", "none"] | None = None
    smtp_starttls: bool | None = None
    # The PEM file of the CA that signed the relay's certificate, when that is not a public one
    # (a data centre's own CA); unset: the system's trust store.
    smtp_ca_file: str | None = None
    smtp_timeout_seconds: float = 15.0
    # Reused connections; mails go out over all of them at once. Each connection sends its next mail
    # only once the outcome of its previous one is recorded, so this is also what a crash (kill -9)
    # may send a second time, at most, per instance: one mail per connection (same Message-ID).
    smtp_connections: int = 4
    smtp_max_attempts: int = 5  # for temporary failures (4xx, refused, timeout), with backoff
    smtp_backoff_seconds: float = 1.0
    # How long a mail the server keeps answering "not now" (421, 451, 452, throttling) is tried
    # again, with growing pauses, before it fails (``deferrals``): an ISO 8601 duration (PT12H).
    smtp_retry_for: timedelta = timedelta(hours=24)
    # Mails per minute the relay takes, for all instances together (``rate_limit``); unset: no limit.
    smtp_rate_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    # A delivery being sent is leased to one instance; after a crash another takes it over.
    delivery_lease_seconds: float = 120.0
    # Deliveries claimed at a time, and claims in flight at once: they only reserve deliveries for
    # this instance (another takes them over once the lease runs out); what a crash may send twice
    # is bounded by SMTP_CONNECTIONS, not by these.
    delivery_claim_size: int = 50
    delivery_claims_in_flight: int = 2
    # Test mails a conference may send per clock hour (all coordinators and instances together).
    test_mails_per_conference_per_hour: int = 10

    # The public origin of the answer page (served by the conferences service): every mail links
    # to {public_base_url}/rsvp/{token}. The default is the conferences service of `make run`.
    public_base_url: str | None = None

    @property
    def public_url(self) -> str:
        """PUBLIC_BASE_URL, else the conferences service's local address (as conferences defaults)."""
        return (self.public_base_url or f"http://localhost:{CONFERENCES.port}").rstrip("/")

    # The Ed25519 private key that signs the personal links (quartier_shared.links): its PEM text or
    # the path of a PEM file. Required to start (see personal_links.PersonalLinks.check); `make run`
    # makes one under var/.
    link_signing_key: SecretStr | None = None
    # The city's privacy notice, linked in every mail's footer (the pages link the same setting).
    privacy_url: str = "https://www.essen.de/datenschutz"

    @property
    def smtp_tls_mode(self) -> Literal["starttls", "implicit", "none"]:
        """SMTP_TLS, else what SMTP_STARTTLS said, else "starttls"."""
        if self.smtp_tls is not None:
            return self.smtp_tls
        return "none" if self.smtp_starttls is False else "starttls"

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> Self:
        # A password over a plain connection is readable on every network it crosses: only an
        # explicit SMTP_TLS=none (a relay on this host, or behind a tunnel) accepts that.
        if self.smtp_username and self.smtp_tls_mode == "none" and self.smtp_tls != "none":
            raise ValueError(
                "SMTP_USERNAME is set but SMTP_STARTTLS=false turns TLS off: the password would travel"
                " in clear. Set SMTP_TLS=starttls (port 587) or SMTP_TLS=implicit (port 465), or"
                " SMTP_TLS=none to accept that."
            )
        return self

    @property
    def mail_domain(self) -> str:
        """Domain of Message-IDs and calendar UIDs: stable as long as the sender is."""
        return self.smtp_from.rpartition("@")[2] or "quartier.invalid"
