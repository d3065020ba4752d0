"""The Kafka settings become the right client arguments: none for the embedded stack (PLAINTEXT),
SASL/SCRAM with the service's own principal for the compose file's broker."""

from __future__ import annotations

import functools
import ssl
from pathlib import Path
from typing import Any, cast

import pytest
from faststream.security import SASLScram512
from pydantic import ValidationError

from quartier import certs
from quartier_shared import kafka
from quartier_shared.kafka import KafkaPublisher, client_kwargs, kafka_security, make_broker
from quartier_shared.settings import ServiceSettings
from tests.unit.test_certs import handshake


def settings(**env: Any) -> ServiceSettings:
    return ServiceSettings.model_validate(env)


def test_plaintext_by_default_adds_nothing() -> None:
    security = kafka_security(settings())
    assert security is None
    assert client_kwargs(security) == {}


def test_sasl_scram_512_as_in_the_compose_file() -> None:
    security = kafka_security(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="actors",
            kafka_sasl_password="s3cret",
        )
    )
    assert isinstance(security, SASLScram512)
    assert client_kwargs(security) == {
        "security_protocol": "SASL_PLAINTEXT",
        "ssl_context": None,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "actors",
        "sasl_plain_password": "s3cret",
    }


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_sasl_ssl_verifies_the_server(mechanism: str) -> None:
    kwargs = client_kwargs(
        kafka_security(
            settings(
                kafka_security_protocol="SASL_SSL",
                kafka_sasl_mechanism=mechanism,
                kafka_sasl_username="u",
                kafka_sasl_password="p",
            )
        )
    )
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == mechanism
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_sasl_ssl_trusts_the_ca_file_and_only_it_in_a_real_handshake(tmp_path: Path) -> None:
    certs.make(tmp_path / "ours", ["kafka"])
    certs.make(tmp_path / "theirs", ["kafka"])
    security = kafka_security(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="actors",
            kafka_sasl_password="p",
            kafka_ssl_ca_file=str(tmp_path / "ours" / "ca.pem"),
        )
    )
    context = client_kwargs(security)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert [str(c["subject"]) for c in context.get_ca_certs()] == ["((('commonName', 'Quartier internal CA'),),)"]
    handshake(tmp_path / "ours" / "kafka.pem", context, "kafka")
    with pytest.raises(ssl.SSLCertVerificationError):  # the same name, another CA: refused
        handshake(tmp_path / "theirs" / "kafka.pem", context, "kafka")
    with pytest.raises(ssl.SSLCertVerificationError):  # our CA, but the certificate is not for this name
        handshake(tmp_path / "ours" / "kafka.pem", context, "kafka.example.org")


def test_a_ca_file_without_tls_is_refused_and_a_missing_one_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="KAFKA_SSL_CA_FILE"):
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
            kafka_ssl_ca_file="/certs/ca.pem",
        )
    absent = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
        kafka_ssl_ca_file=str(tmp_path / "absent.pem"),
    )
    with pytest.raises(FileNotFoundError):
        kafka_security(absent)


def test_the_password_is_not_shown() -> None:
    configured = settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password="pw1")
    assert "pw1" not in repr(configured) and "pw1" not in str(configured.model_dump())


@pytest.mark.parametrize(
    "env",
    [
        {"kafka_security_protocol": "SASL_PLAINTEXT"},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},
        {"kafka_security_protocol": "SSL"},
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI"},
    ],
)
def test_incomplete_or_unknown_security_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        settings(**env)


async def test_every_client_gets_the_security(monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumers (the FastStream broker), the producer and the admin client carry the principal
    (nothing connects)."""
    security = SASLScram512("notifications", "pw")
    expected = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"}
    expected |= {"sasl_plain_username": "notifications", "sasl_plain_password": "pw"}

    broker = make_broker("kafka:9092", security=security)
    builder = cast("functools.partial[Any]", broker.config.broker_config.builder)  # makes its AIOKafkaConsumers
    consumer_kwargs = builder.keywords
    assert expected.items() <= consumer_kwargs.items()

    created: list[dict[str, Any]] = []

    class Recording:
        def __init__(self, **kwargs: Any) -> None:
            created.append(kwargs)

        async def start(self) -> None:
            raise ConnectionError("not in a unit test")

        async def stop(self) -> None:
            return None

        async def close(self) -> None:
            return None

    monkeypatch.setattr(kafka, "AIOKafkaProducer", Recording)
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", Recording)
    with pytest.raises(ConnectionError):
        await KafkaPublisher("kafka:9092", security=security).start()
    with pytest.raises(ConnectionError):
        await kafka.ensure_topics("kafka:9092", security=security)
    assert len(created) == 2
    assert all(expected.items() <= kwargs.items() for kwargs in created), created
