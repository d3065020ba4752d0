from quartier_shared.services import CONFERENCES
from quartier_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = CONFERENCES.name
    port: int = CONFERENCES.port
    mongodb_database: str = CONFERENCES.database
    # Invitations written per transaction during a fan-out.
    fanout_batch_size: int = 500
