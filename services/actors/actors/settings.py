from pydantic import Field

from quartier_shared.services import ACTORS
from quartier_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = ACTORS.name
    port: int = ACTORS.port
    mongodb_database: str = ACTORS.database
    # The version of the consent text the registering staff show the person (a date-like label):
    # recorded with every consent that a request does not give a version for.
    consent_wording_version: str = "2026-11"
    # How long the audit log keeps an entry (actors/retention.py): two years, the span a
    # data-protection officer is usually asked about.
    audit_retention_months: int = Field(default=24, ge=1, le=120)
