"""`make run`'s banner names the portal's address and the demo sign-ins."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from quartier import run
from quartier.login import DEMO_USERS


def test_the_banner_names_the_portal_and_the_demo_users(capsys: pytest.CaptureFixture[str]) -> None:
    stack: Any = SimpleNamespace(processes={"issuer": 1, "smtp": 1}, maildir=Path("var/mail"), log_dir=Path("var/logs"))
    run._banner(stack, "127.0.0.1", {"actors": 8001, "conferences": 8002, "notifications": 8003}, 8000)
    out = capsys.readouterr().out
    assert "portal         http://127.0.0.1:8000" in out
    assert all(user.username in out for user in DEMO_USERS)
    assert {"demo-coordinator", "demo-manager-iv", "demo-operator", "demo-data-protection"} == {
        user.username for user in DEMO_USERS
    }


def test_the_portal_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_PORT", raising=False)
    assert run.portal_port() == 8000 and run.portal_port(20000) == 20003
    monkeypatch.setenv("PORTAL_PORT", "9000")
    assert run.portal_port() == 9000
