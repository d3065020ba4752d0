"""The services as processes: how `quartier run`, the benchmark, the fault suite and the end-to-end
tests all start them.

Each instance runs ``python -m <service>`` with the infrastructure's environment (``infra.env()``,
which carries the embedded broker's consumer tuning), ``HOST=127.0.0.1``, its ``PORT`` and its own
``MONGODB_DATABASE``. Services start in registry order (``quartier_shared.services.SERVICES``).
An instance is named after its service ("conferences"); a service that runs several times has
"-1", "-2", … after its name ("notifications-2"). A restart runs the same command on the same port,
so an instance keeps its URL. With a ``log_dir`` each instance writes ``<name>.log`` there
(appended across restarts); without one, its output goes where ours goes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from quartier_shared.services import SERVICES

from .embedded import Infrastructure, Process, free_port


class ServiceExited(RuntimeError):
    """A service process ended before it answered ready."""


def is_ready(url: str) -> bool:
    """Whether ``url``/health/ready answers 200 and reports Kafka up (where it reports Kafka): the
    whole stack is up. Readiness alone needs only MongoDB, but a stack that is starting is not
    ready for the URLs' banner or a test's first event before the broker answers too."""
    import httpx

    try:
        answer = httpx.get(f"{url}/health/ready", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.json().get("checks", {}).get("kafka", "ok") == "ok"


@dataclass
class Instance:
    """One process of a service."""

    name: str  # "conferences", or "notifications-2" when the service runs several times
    service: str
    port: int
    process: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ServiceProcesses:
    """The service instances of one stack; stopped together, also as a context manager."""

    infra: Infrastructure
    log_dir: Path | None = None
    # Databases "<prefix>_<service>" instead of the registry's, so runs can share one MongoDB.
    database_prefix: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # for every instance
    # Service name -> settings of its own (a MongoDB of its own, say); read at each start and restart.
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict, init=False)  # by name, in start order

    def database(self, service: str) -> str:
        return f"{self.database_prefix}_{service}" if self.database_prefix else SERVICES[service].database

    def start(self, ports: Mapping[str, int] | None = None, copies: Mapping[str, int] | None = None) -> None:
        """Every service, ``copies[service]`` times (once by default), without waiting for any.

        ``ports``: by instance name; an instance without one gets a free port.
        """
        for service in SERVICES:
            count = (copies or {}).get(service, 1)
            for i in range(1, count + 1):
                name = service if count == 1 else f"{service}-{i}"
                self._launch(service, name, (ports or {}).get(name) or free_port())

    def _launch(self, service: str, name: str, port: int) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **self.infra.env(),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "MONGODB_DATABASE": self.database(service),
            **self.env,
            **self.service_env.get(service, {}),
        }
        process = Process(name, [sys.executable, "-m", service], env=env, log_path=self.log_path(name))
        self.instances[name] = Instance(name, service, port, process.start())

    def start_portal(self, port: int, env: Mapping[str, str]) -> None:
        """The staff portal (``python -m portal``, instance "portal"): no database and no broker, a
        client of the services' URLs and the issuer given in ``env``; restarted like the others."""
        settings = {**self.infra.env(), "HOST": "127.0.0.1", "PORTAL_PORT": str(port), **self.env, **env}
        process = Process("portal", [sys.executable, "-m", "portal"], env=settings, log_path=self.log_path("portal"))
        self.instances["portal"] = Instance("portal", "portal", port, process.start())

    def restart(self, name: str) -> Process:
        """The instance again: same command, port and log; stopped first if it still runs."""
        process = self.instances[name].process
        process.stop()
        return process.start()

    def wait_ready(self, names: Iterable[str] | None = None, timeout: float = 90.0) -> None:
        """Until every instance (or those named) answers ready; fails as soon as one of them exits."""
        waiting = [self.instances[name] for name in (self.instances if names is None else names)]
        deadline = time.monotonic() + timeout
        while True:
            for instance in list(waiting):
                if not instance.process.alive():
                    raise ServiceExited(
                        f"{instance.name} exited with code {instance.process.returncode} before it was ready"
                        + self._see_log(instance.name)
                    )
                if is_ready(instance.url):
                    waiting.remove(instance)
            if not waiting:
                return
            if time.monotonic() > deadline:
                names_left = ", ".join(i.name for i in waiting)
                raise TimeoutError(f"{names_left} not ready after {timeout:.0f}s{self._see_log(waiting[0].name)}")
            time.sleep(0.2)

    def all_ready(self) -> bool:
        return all(is_ready(instance.url) for instance in self.instances.values())

    @property
    def processes(self) -> dict[str, Process]:
        return {name: instance.process for name, instance in self.instances.items()}

    @property
    def urls(self) -> dict[str, str]:
        return {name: instance.url for name, instance in self.instances.items()}

    def url_of(self, service: str) -> str:
        """The URL of a running instance of ``service`` (the first one started)."""
        for instance in self.instances.values():
            if instance.service == service and instance.process.alive():
                return instance.url
        raise LookupError(f"no instance of {service} is running")

    def pids(self) -> dict[str, int]:
        return {name: instance.process.pid for name, instance in self.instances.items()}

    def log_path(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{name}.log"

    def log(self, name: str, chars: int | None = 6000) -> str:
        """The last ``chars`` characters of an instance's log (None: all of it; "" without a log file)."""
        path = self.log_path(name)
        text = path.read_text(errors="replace") if path is not None and path.exists() else ""
        return text if chars is None else text[-chars:]

    def logs(self, chars: int = 6000) -> str:
        """The end of every instance's log, each under its name: for the output of a failed test."""
        return "\n".join(f"--- {name}\n{self.log(name, chars)}" for name in self.instances)

    def _see_log(self, name: str) -> str:
        path = self.log_path(name)
        return "" if path is None else f"; see {path}"

    def stop(self) -> None:
        for instance in self.instances.values():
            instance.process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
