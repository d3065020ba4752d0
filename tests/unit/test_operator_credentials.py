"""How the operator commands sign in to Kafka (``quartier.common.kafka_credentials``): the
services' variables, or the password from a file (a Docker secret), never a password in an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from faststream.security import SASLScram512

from quartier.common import USAGE, OperatorError, kafka_address, kafka_credentials

SASL = {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "admin"}


def test_without_credentials_the_commands_speak_plaintext() -> None:
    assert kafka_credentials({}) is None


def test_the_password_comes_from_the_variable_or_from_the_file_a_secret_mounts(tmp_path: Path) -> None:
    from_env = kafka_credentials(SASL | {"KAFKA_SASL_PASSWORD": "pw-env"})
    assert isinstance(from_env, SASLScram512)
    assert (from_env.username, from_env.password) == ("admin", "pw-env")
    secret = tmp_path / "kafka_admin_password"
    secret.write_text("pw-file\n", encoding="utf-8")  # as `echo` or compose writes it: the newline is no part
    from_file = kafka_credentials(SASL | {"KAFKA_SASL_PASSWORD_FILE": str(secret), "KAFKA_SASL_MECHANISM": "PLAIN"})
    assert from_file is not None and type(from_file).__name__ == "SASLPlaintext"
    assert from_file.password == "pw-file"  # type: ignore[attr-defined]
    address = kafka_address(
        None, tmp_path, SASL | {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "KAFKA_SASL_PASSWORD": "x"}
    )
    assert (address.value, address.source) == ("kafka:9092", "KAFKA_BOOTSTRAP_SERVERS")
    assert isinstance(address.security, SASLScram512) and address.security.password == "x"


def test_incomplete_or_unreadable_credentials_stop_the_command_without_echoing_them(tmp_path: Path) -> None:
    with pytest.raises(OperatorError) as missing:
        kafka_credentials({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": "secret-pw"})
    assert missing.value.exit_code == USAGE and "KAFKA_SASL_USERNAME" in str(missing.value)
    assert "secret-pw" not in str(missing.value)
    with pytest.raises(OperatorError) as wrong:
        kafka_credentials(SASL | {"KAFKA_SASL_MECHANISM": "secret-pw", "KAFKA_SASL_PASSWORD": "x"})
    assert "secret-pw" not in str(wrong.value)
    with pytest.raises(OperatorError) as unreadable:
        kafka_credentials(SASL | {"KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "absent")})
    assert "KAFKA_SASL_PASSWORD_FILE" in str(unreadable.value) and unreadable.value.exit_code == USAGE
