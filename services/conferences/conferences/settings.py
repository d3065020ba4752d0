from datetime import timedelta

from pydantic import Field, field_validator

from quartier_shared.services import CONFERENCES
from quartier_shared.settings import ServiceSettings
from quartier_shared.web import PageSettings

from .reminders import parse_offsets


class Settings(ServiceSettings, PageSettings):
    service_name: str = CONFERENCES.name
    port: int = CONFERENCES.port
    mongodb_database: str = CONFERENCES.database
    # Invitations written per transaction during a fan-out.
    fanout_batch_size: int = 500
    # The public key personal links are verified with (PEM text, or the path of a PEM file):
    # quartier_shared.links. Without it the answer page answers 503.
    link_verify_key: str | None = None
    # Reminders before each conference's start: comma-separated ISO 8601 durations (reminders.py).
    reminders_before: str = "P7D,P1D"
    # How often an instance looks for due reminders, and how long it holds one it is firing.
    reminders_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    reminders_lease_seconds: float = Field(default=60.0, ge=5, le=3600)

    @field_validator("reminders_before")
    @classmethod
    def _durations(cls, value: str) -> str:
        parse_offsets(value)  # a bad setting stops the service at start-up, saying why
        return value

    @property
    def reminder_offsets(self) -> tuple[tuple[str, timedelta], ...]:
        return parse_offsets(self.reminders_before)

    @property
    def public_url(self) -> str:
        """PUBLIC_BASE_URL, else this service's local address."""
        return (self.public_base_url or f"http://localhost:{self.port}").rstrip("/")
