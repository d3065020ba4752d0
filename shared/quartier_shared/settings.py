"""Settings every service reads from its environment (pydantic-settings; no config files).

The two passwords a service signs in with may come as files instead: Docker secrets, mounted at
``/run/secrets/<field name>`` (``kafka_sasl_password``, ``mongodb_password``), which no
``docker inspect`` and no child process sees, unlike a variable. A variable of the same name wins
over the file. ``MONGODB_PASSWORD`` goes into ``MONGODB_URI``, whose user it is the password of
(``mongodb://actors@mongodb:27017/...``), so that the URI itself holds no secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .topics import DEAD_LETTERS_RETENTION_DAYS

SECRETS_DIR = Path("/run/secrets")
# The fields a Docker secret may set: passwords only (other settings of a service are no secret,
# and /run/secrets also holds files that settings name by path, such as the link keys).
SECRET_FIELDS = ("kafka_sasl_password", "mongodb_password")


class DockerSecrets(PydanticBaseSettingsSource):
    """``SECRET_FIELDS`` from the files of ``directory`` named after them; nothing when there are
    none (a development machine has no /run/secrets)."""

    def __init__(self, settings_cls: type[BaseSettings], directory: Path | None = None) -> None:
        super().__init__(settings_cls)
        self.directory = SECRETS_DIR if directory is None else directory

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = self.directory / field_name
        if field_name not in SECRET_FIELDS or not path.is_file():
            return None, field_name, False
        # A trailing newline (echo, an editor) is no part of a password.
        return path.read_text(encoding="utf-8").rstrip("\r\n"), field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return found


def with_password(uri: str, password: str) -> str:
    """``uri`` with ``password`` for the user it names: mongodb://actors@host/ -> mongodb://actors:pw@host/."""
    scheme, separator, rest = uri.partition("://")
    authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, hosts = authority.rpartition("@")
    if not separator or not at or not userinfo:
        raise ValueError("MONGODB_PASSWORD needs the user in MONGODB_URI (mongodb://USER@host/...)")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{quote(password, safe='')}@{hosts}{tail}"


class ServiceSettings(BaseSettings):
    """Common settings. Each service subclasses it to set its name, port and database."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    service_name: str = "quartier"
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "INFO"
    # Host names the HTTP API answers to (comma-separated; "*" for any): against DNS rebinding.
    allowed_hosts: str = "localhost,127.0.0.1"

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Kafka defaults suit a real cluster; the embedded stack sets shorter ones (see README).
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_fetch_max_wait_ms: int = 100
    kafka_max_batch: int = 500
    # Authentication to Kafka (quartier_shared.kafka.kafka_security). PLAINTEXT: none, as the embedded
    # stack has it; the compose file uses SASL_PLAINTEXT with SCRAM-SHA-512, one principal per service.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None

    mongodb_uri: str = "mongodb://127.0.0.1:27017/?replicaSet=rs0"
    mongodb_database: str = "quartier"
    # The password of MONGODB_URI's user, kept out of the URI (a Docker secret; see the docstring).
    mongodb_password: SecretStr | None = None
    mongodb_timeout_ms: int = 5_000

    # How often a failing handler is retried before its message is dead-lettered.
    handler_max_attempts: int = 5
    handler_backoff_seconds: float = 0.5

    # How long personal data tied to a conference (deliveries and their SMTP replies, answers'
    # free text) is kept after the conference ended: quartier_shared.retention.
    retention_months: int = Field(default=12, ge=1, le=120)

    # How long the dead-letter topics keep a dead letter for an operator to look at or replay
    # (days): applied to their retention.ms where the service may alter topics (topics.declared_topics).
    dead_letter_retention_days: int = Field(default=DEAD_LETTERS_RETENTION_DAYS, ge=1, le=3650)

    # Bearer tokens (OIDC JWTs): the issuer they must name, the audience, and where its keys are.
    # Without an issuer and a JWKS URL every protected endpoint answers 401.
    auth_issuer: str | None = None
    auth_audience: str = "quartier"
    auth_jwks_url: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The variables first, then the Docker secrets (only ours: see DockerSecrets).
        return init_settings, env_settings, dotenv_settings, DockerSecrets(settings_cls)

    @property
    def allowed_host_list(self) -> list[str]:
        return [host.strip() for host in self.allowed_hosts.split(",") if host.strip()]

    @model_validator(mode="after")
    def _password_into_the_uri(self) -> Self:
        if self.mongodb_password is not None:
            self.mongodb_uri = with_password(self.mongodb_uri, self.mongodb_password.get_secret_value())
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self
