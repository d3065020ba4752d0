from quartier_shared.services import CONFERENCES
from quartier_shared.settings import ServiceSettings
from quartier_shared.web import PageSettings


class Settings(ServiceSettings, PageSettings):
    service_name: str = CONFERENCES.name
    port: int = CONFERENCES.port
    mongodb_database: str = CONFERENCES.database
    # Invitations written per transaction during a fan-out.
    fanout_batch_size: int = 500
    # The public key personal links are verified with (PEM text, or the path of a PEM file):
    # quartier_shared.links. Without it the answer page answers 503.
    link_verify_key: str | None = None

    @property
    def public_url(self) -> str:
        """PUBLIC_BASE_URL, else this service's local address."""
        return (self.public_base_url or f"http://localhost:{self.port}").rstrip("/")
