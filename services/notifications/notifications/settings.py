from pydantic import SecretStr

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
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 15.0
    # Reused connections; mails go out over all of them at once. Each connection sends its next mail
    # only once the outcome of its previous one is recorded, so this is also what a crash (kill -9)
    # may send a second time, at most, per instance: one mail per connection (same Message-ID).
    smtp_connections: int = 4
    smtp_max_attempts: int = 5  # for temporary failures (4xx, refused, timeout), with backoff
    smtp_backoff_seconds: float = 1.0
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
    def mail_domain(self) -> str:
        """Domain of Message-IDs and calendar UIDs: stable as long as the sender is."""
        return self.smtp_from.rpartition("@")[2] or "quartier.invalid"
