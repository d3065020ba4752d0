"""What the operator commands (`quartier dlq`, `quartier outbox`) share: where the stack is, and how
an expected failure ends a command (one line, an exit code) instead of a stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .run import STACK_ENV

# Exit codes: 1 when the stack did not answer, 2 when the command cannot be carried out as asked.
UNREACHABLE = 1
USAGE = 2


class OperatorError(Exception):
    """An expected failure: ``main`` prints the message as one line and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = UNREACHABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Address:
    """A server address and where it came from, so an error can say which setting to fix."""

    value: str
    source: str


def read_stack_env(var_dir: Path) -> dict[str, str]:
    """The KEY=VALUE lines `quartier run` writes while the embedded stack is up; {} without it."""
    try:
        text = (var_dir / STACK_ENV).read_text()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


def resolve(
    what: str, flag_name: str, flag: str | None, variable: str, var_dir: Path, environ: Mapping[str, str] | None = None
) -> Address:
    """Flag, else environment variable, else `var/stack.env`: the order an operator expects."""
    env = os.environ if environ is None else environ
    if flag:
        return Address(flag, flag_name)
    if env.get(variable):
        return Address(env[variable], variable)
    from_file = read_stack_env(var_dir).get(variable)
    if from_file:
        return Address(from_file, str(var_dir / STACK_ENV))
    raise OperatorError(
        f"no {what} address: start `make run` (it writes {var_dir / STACK_ENV}), set {variable} or pass {flag_name}",
        USAGE,
    )


_CREDENTIALS = re.compile(r"(?<=://)[^/@]*@")


def without_credentials(uri: str) -> str:
    """A URI fit for an error message: a password must not end up in a terminal or a CI log."""
    return _CREDENTIALS.sub("***@", uri)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """Header text from outside on one line, with no escape sequences that could drive the terminal."""
    return _CONTROL.sub(" ", text)


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Silence client libraries that log connection errors themselves: the command says it once."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
