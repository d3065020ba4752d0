"""The machine check that runs before `make` creates the venv (tools/quartier/requirements_check.py):
a clear message for a Python or a platform the embedded stack has no wheels for, nothing on one
it has; the same for docker compose."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from quartier import requirements_check as check

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "quartier" / "requirements_check.py"
GLIBC = ("glibc", "2.36")


@pytest.mark.parametrize(
    ("python", "system", "machine"),
    [
        ("3.11.2", "Linux", "x86_64"),
        ("3.12.8", "Linux", "aarch64"),
        ("3.13.1", "Darwin", "arm64"),
        ("3.13.0rc1", "Linux", "x86_64"),
    ],
)
def test_supported_machines_pass(python: str, system: str, machine: str) -> None:
    assert check.embedded_problems(python, system, machine, GLIBC) == []


@pytest.mark.parametrize(
    ("python", "system", "machine", "libc", "says"),
    [
        ("3.10.12", "Linux", "x86_64", GLIBC, "Python 3.11 to 3.13 is needed, this is 3.10.12"),
        ("3.14.0", "Linux", "x86_64", GLIBC, "Python 3.11 to 3.13 is needed, this is 3.14.0"),
        ("3.12.1", "Darwin", "x86_64", ("", ""), "arm64 Python"),
        ("3.12.1", "Windows", "AMD64", ("", ""), "WSL 2"),
        ("3.12.1", "Linux", "riscv64", GLIBC, "x86-64 and arm64 only"),
        ("3.12.1", "Linux", "x86_64", ("glibc", "2.12"), "glibc 2.12 is too old"),
    ],
)
def test_unsupported_machines_are_named_with_what_to_do(
    python: str, system: str, machine: str, libc: tuple[str, str], says: str
) -> None:
    [problem] = check.embedded_problems(python, system, machine, libc)
    assert says in problem
    assert "make PYTHON=" in problem or "deploy/" in problem  # what to do instead


def test_musl_linux_passes() -> None:
    assert check.embedded_problems("3.12.1", "Linux", "x86_64", ("", "")) == []


@pytest.mark.parametrize(
    ("docker", "compose", "problems"),
    [
        ("27.3.1", "v2.29.7", 0),
        ("25.0.0", "2.24.0", 0),
        ("24.0.7", "2.29.7", 1),
        ("27.3.1", "2.23.3", 1),
        (None, None, 2),
    ],
)
def test_compose_needs_engine_25_and_compose_2_24(docker: str | None, compose: str | None, problems: int) -> None:
    assert len(check.compose_problems(docker, compose)) == problems


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=60)


def test_the_script_exits_1_with_the_message_and_0_where_all_is_there() -> None:
    refused = run("--python", "3.14.0", "--system", "Linux", "--machine", "x86_64", "--libc", "glibc-2.36")
    assert refused.returncode == 1
    assert refused.stderr.startswith("quartier: Python 3.11 to 3.13 is needed, this is 3.14.0")
    passed = run("--python", "3.12.1", "--system", "Darwin", "--machine", "arm64")
    assert (passed.returncode, passed.stderr) == (0, "")
    assert run("compose", "--docker", "24.0.0", "--compose", "2.29.0").returncode == 1


def test_this_machine_passes_so_make_test_runs_here() -> None:
    here = run()
    assert here.returncode == 0, here.stderr


def test_the_makefile_checks_before_it_makes_the_venv() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(LOCKED): requirements-dev.lock\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()]
    checked = next(i for i, line in enumerate(lines) if "tools/quartier/requirements_check.py" in line)
    made = next(i for i, line in enumerate(lines) if re.search(r"-m venv \$\(VENV\)", line))
    assert checked < made
