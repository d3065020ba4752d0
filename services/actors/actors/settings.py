from quartier_shared.services import ACTORS
from quartier_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = ACTORS.name
    port: int = ACTORS.port
    mongodb_database: str = ACTORS.database
