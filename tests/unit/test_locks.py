"""The lock files: exact pins with hashes, consistent with each other and with what they are compiled from.

`make install` installs requirements-dev.lock; the images install requirements.lock (deploy/Dockerfile).
`make lock` writes both. These checks fail when an input changed and the locks were not compiled again.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = ROOT / "requirements-dev.lock"
RUNTIME_LOCK = ROOT / "requirements.lock"
LOCKS = {DEV_LOCK: ROOT / "requirements-dev.txt", RUNTIME_LOCK: ROOT / "requirements.in"}


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    marker: str | None
    hashes: frozenset[str]


def logical_lines(path: Path) -> list[str]:
    """Lines without comments, with backslash continuations joined."""
    joined = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        joined += line.removesuffix("\\") + (" " if line.endswith("\\") else "\n")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def read_lock(path: Path) -> list[Pin]:
    pins = []
    for line in logical_lines(path):
        assert not line.startswith("-"), f"{path.name}: only pinned packages belong in a lock: {line}"
        requirement, *hashes = line.split(" --hash=")
        parsed = Requirement(requirement)
        (specifier,) = parsed.specifier
        assert specifier.operator == "==", f"{path.name}: {requirement} is not an exact pin"
        marker = str(parsed.marker) if parsed.marker else None
        pins.append(Pin(canonicalize_name(parsed.name), specifier.version, marker, frozenset(hashes)))
    return pins


def declared(path: Path) -> list[Requirement]:
    """What a requirements file asks for, following -r files and the pyproject.toml of -e packages.

    Each editable package also brings its build-system requirements: it is installed with
    --no-build-isolation, so its build backend must come from the lock too.
    """
    result: list[Requirement] = []
    for line in logical_lines(path):
        if line.startswith("-r "):
            result += declared(path.parent / line[3:].strip())
        elif line.startswith("-e "):
            project = tomllib.loads((path.parent / line[3:].strip() / "pyproject.toml").read_text(encoding="utf-8"))
            for text in project["project"]["dependencies"] + project["build-system"]["requires"]:
                result.append(Requirement(text))
        else:
            result.append(Requirement(line))
    return [r for r in result if not r.name.startswith("quartier-")]


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_every_locked_package_is_pinned_with_hashes(lock: Path) -> None:
    pins = read_lock(lock)
    assert pins, f"{lock.name} is empty"
    for pin in pins:
        assert pin.hashes and all(h.startswith("sha256:") for h in pin.hashes), f"{lock.name}: {pin.name} has no hash"
        assert not pin.name.startswith("quartier-"), f"{lock.name}: our own {pin.name} is installed from source"


def stale(pins: list[Pin], requirements: list[Requirement]) -> list[str]:
    """The requirements that the pinned versions miss or do not satisfy."""
    versions: dict[str, list[str]] = {}
    for pin in pins:
        versions.setdefault(pin.name, []).append(pin.version)
    problems = []
    for requirement in requirements:
        found = versions.get(canonicalize_name(requirement.name))
        if not found:
            problems.append(f"{requirement} is missing")
        elif not all(requirement.specifier.contains(v, prereleases=True) for v in found):
            problems.append(f"{requirement} is locked at {found}")
    return problems


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_the_lock_satisfies_every_requirement_it_is_compiled_from(lock: Path) -> None:
    problems = stale(read_lock(lock), declared(LOCKS[lock]))
    assert not problems, f"{lock.name} is stale, run `make lock`: {problems}"


def test_the_images_get_the_same_versions_as_the_development_venv() -> None:
    development = set(read_lock(DEV_LOCK))
    differs = [f"{pin.name}=={pin.version}" for pin in read_lock(RUNTIME_LOCK) if pin not in development]
    assert not differs, f"requirements.lock differs from requirements-dev.lock, run `make lock`: {differs}"


def test_the_stale_lock_check_has_teeth(tmp_path: Path) -> None:
    """A raised bound and a new dependency must be found, or the test above proves nothing."""
    (tmp_path / "requirements.in").write_text("# a comment\npydantic>=999\nno-such-package\n", encoding="utf-8")
    problems = stale(read_lock(DEV_LOCK), declared(tmp_path / "requirements.in"))
    assert len(problems) == 2 and "pydantic>=999 is locked at" in problems[0], problems
    assert problems[1] == "no-such-package is missing"
