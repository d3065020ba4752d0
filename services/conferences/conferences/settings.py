from quartier_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "conferences"
    port: int = 8002
    mongodb_database: str = "quartier_conferences"
    # Invitations written per transaction during a fan-out.
    fanout_batch_size: int = 500
