"""`quartier token`: tokens of the local issuer that `make run` writes into var/stack.env."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from quartier.cli import main
from quartier.issuer import LocalIssuer, jwks
from quartier.run import STACK_ENV


@pytest.fixture
def var(tmp_path: Path) -> Path:
    issuer = LocalIssuer.at(tmp_path / "auth", 40123)
    (tmp_path / STACK_ENV).write_text("".join(f"{k}={v}\n" for k, v in issuer.env().items()))
    return tmp_path


def verified(token: str, var: Path) -> dict[str, object]:
    key = jwt.PyJWK(jwks(var / "auth" / "signing-key.pem")["keys"][0])
    issuer = (var / STACK_ENV).read_text().split("AUTH_ISSUER=")[1].split()[0]
    claims: dict[str, object] = jwt.decode(token, key, algorithms=["EdDSA"], audience="quartier", issuer=issuer)
    return claims


def test_a_quarter_managers_token(var: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["token", "--var", str(var), "--role", "quarter_manager", "--district", "iv", "--minutes", "5"]
    assert main([*argv, "--subject", "qm-42"]) == 0
    claims = verified(capsys.readouterr().out.strip(), var)
    assert claims["roles"] == ["quarter_manager"] and claims["districts"] == ["IV"] and claims["sub"] == "qm-42"
    assert claims["exp"] == claims["iat"] + 300  # type: ignore[operator]


def test_a_coordinators_token_has_a_subject_that_is_no_name(var: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--var", str(var), "--role", "coordinator"]) == 0
    claims = verified(capsys.readouterr().out.strip(), var)
    assert claims["roles"] == ["coordinator"] and claims["sub"] == "local-coordinator"


@pytest.mark.parametrize(
    "argv",
    [
        ["--role", "quarter_manager"],  # without a district
        ["--role", "coordinator", "--district", "XII"],
        ["--role", "coordinator", "--minutes", "0"],
    ],
)
def test_refused_requests_exit_2(var: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--var", str(var), *argv]) == 2
    assert capsys.readouterr().out == ""


def test_without_a_running_stack_there_is_no_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--var", str(tmp_path), "--role", "coordinator"]) == 2
    assert "make run" in capsys.readouterr().err
