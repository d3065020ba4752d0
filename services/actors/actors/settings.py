from quartier_shared.services import ACTORS
from quartier_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = ACTORS.name
    port: int = ACTORS.port
    mongodb_database: str = ACTORS.database
    # The version of the consent text the registering staff show the person (a date-like label):
    # recorded with every consent that a request does not give a version for.
    consent_wording_version: str = "2026-11"
