"""What the operator commands (`quartier dlq`, `quartier outbox`, `quartier topics`) share: where the
stack is, how to sign in to its Kafka, and how an expected failure ends a command (one line, an exit
code) instead of a stack trace.

Kafka credentials come from the environment only, with the names the services read
(``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``,
``KAFKA_SASL_PASSWORD``), or the password from the file ``KAFKA_SASL_PASSWORD_FILE`` names (a
Docker secret, so that it appears in no ``docker inspect``). Never a flag: a password on the
command line is in the shell history and in ``ps``. Without them: PLAINTEXT, the embedded stack.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from faststream.security import BaseSecurity
from pydantic import ValidationError

from quartier_shared.kafka import kafka_security
from quartier_shared.settings import ServiceSettings

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
    """A server address and where it came from, so an error can say which setting to fix; for
    Kafka also how to sign in (None: PLAINTEXT)."""

    value: str
    source: str
    security: BaseSecurity | None = None


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


KAFKA_CREDENTIALS = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
PASSWORD_FILE = "KAFKA_SASL_PASSWORD_FILE"  # noqa: S105 -- the name of a variable, not a password


def kafka_credentials(environ: Mapping[str, str] | None = None) -> BaseSecurity | None:
    """How to sign in to Kafka, from the environment (the module docstring); checked by the services'
    own settings, so the tools and the services accept exactly the same values."""
    env = os.environ if environ is None else environ
    values = {name.lower(): env[name] for name in KAFKA_CREDENTIALS if env.get(name)}
    if env.get(PASSWORD_FILE):
        try:
            values["kafka_sasl_password"] = Path(env[PASSWORD_FILE]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise OperatorError(f"{PASSWORD_FILE}: cannot read {env[PASSWORD_FILE]} ({exc.strerror})", USAGE) from exc
    try:
        settings = ServiceSettings.model_validate(values)
    except ValidationError as exc:
        # The messages name the setting, never its value (input is left out of the text).
        problems = "; ".join(str(e["msg"]) for e in exc.errors(include_input=False))
        raise OperatorError(f"Kafka credentials: {problems}", USAGE) from exc
    return kafka_security(settings)


def kafka_address(flag: str | None, var_dir: Path, environ: Mapping[str, str] | None = None) -> Address:
    """Kafka's address as ``resolve`` finds it, with the credentials of the environment."""
    found = resolve("Kafka", "--kafka", flag, "KAFKA_BOOTSTRAP_SERVERS", var_dir, environ)
    return Address(found.value, found.source, kafka_credentials(environ))
