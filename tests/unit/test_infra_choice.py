"""QUARTIER_TEST_INFRA picks the test infrastructure; without it, a Docker engine decides."""

from __future__ import annotations

import pytest

from tests import infra


def test_forced_choice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infra, "docker_answers", lambda: True)
    monkeypatch.setenv(infra.INFRA_VARIABLE, "embedded")
    assert infra.chosen_infra() == "embedded"
    monkeypatch.setenv(infra.INFRA_VARIABLE, "Docker")
    assert infra.chosen_infra() == "docker"
    monkeypatch.setattr(infra, "docker_answers", lambda: False)
    with pytest.raises(pytest.UsageError, match="no Docker engine"):
        infra.chosen_infra()


def test_without_a_choice_a_docker_engine_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(infra.INFRA_VARIABLE, raising=False)
    monkeypatch.setattr(infra, "docker_answers", lambda: True)
    assert infra.chosen_infra() == "docker"
    monkeypatch.setattr(infra, "docker_answers", lambda: False)
    assert infra.chosen_infra() == "embedded"


def test_a_wrong_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(infra.INFRA_VARIABLE, "podman")
    with pytest.raises(pytest.UsageError, match="docker"):
        infra.chosen_infra()
