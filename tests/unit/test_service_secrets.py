"""Docker secrets for the services' passwords (quartier_shared.settings): kafka_sasl_password and
mongodb_password from /run/secrets/<field name>, a variable winning over a file, the MongoDB
password put into MONGODB_URI for its user, and nothing else read from that folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from actors.settings import Settings as ActorsSettings
from quartier_shared import settings as shared_settings
from quartier_shared.settings import with_password


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(shared_settings, "SECRETS_DIR", tmp_path)
    for name in ("KAFKA_SASL_PASSWORD", "MONGODB_PASSWORD", "MONGODB_URI", "LINK_SIGNING_KEY", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_passwords_come_from_their_files_and_the_uri_holds_none_of_its_own(
    secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (secrets / "kafka_sasl_password").write_text("kafka-pw-from-file\n", encoding="utf-8")
    (secrets / "mongodb_password").write_text("mongo/pw:@from-file\n", encoding="utf-8")
    monkeypatch.setenv("MONGODB_URI", "mongodb://actors@mongodb:27017/?replicaSet=rs0&authSource=admin")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "actors")
    settings = ActorsSettings()
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "kafka-pw-from-file"
    # Quoted: a password may hold what a URI reserves.
    assert (
        settings.mongodb_uri
        == "mongodb://actors:mongo%2Fpw%3A%40from-file@mongodb:27017/?replicaSet=rs0&authSource=admin"
    )


def test_a_variable_wins_over_a_file_and_no_other_setting_is_read_from_the_folder(
    secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (secrets / "kafka_sasl_password").write_text("from-file", encoding="utf-8")
    (secrets / "log_level").write_text("DEBUG", encoding="utf-8")  # not a secret field: ignored
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-env")
    settings = ActorsSettings()
    assert settings.kafka_sasl_password is not None and settings.kafka_sasl_password.get_secret_value() == "from-env"
    assert settings.log_level == "INFO"
    assert settings.mongodb_password is None and settings.mongodb_uri == "mongodb://127.0.0.1:27017/?replicaSet=rs0"


def test_without_a_secrets_folder_nothing_is_read_and_nothing_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_settings, "SECRETS_DIR", tmp_path / "absent")
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = ActorsSettings()
    assert settings.kafka_sasl_password is None


def test_the_password_goes_to_the_uris_user_and_replaces_one_written_there() -> None:
    assert with_password("mongodb://u@h1:27017,h2:27017/db?x=1", "p") == "mongodb://u:p@h1:27017,h2:27017/db?x=1"
    assert with_password("mongodb://u:old@h/?replicaSet=rs0", "new") == "mongodb://u:new@h/?replicaSet=rs0"
    with pytest.raises(ValueError, match="needs the user"):
        with_password("mongodb://h:27017/?replicaSet=rs0", "p")
