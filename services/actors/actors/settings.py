from quartier_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "actors"
    port: int = 8001
    mongodb_database: str = "quartier_actors"
