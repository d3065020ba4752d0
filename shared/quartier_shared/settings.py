"""Settings every service reads from its environment (pydantic-settings; no config files)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .topics import DEAD_LETTERS_RETENTION_DAYS


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

    @property
    def allowed_host_list(self) -> list[str]:
        return [host.strip() for host in self.allowed_hosts.split(",") if host.strip()]

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
