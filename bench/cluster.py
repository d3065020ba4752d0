"""One benchmark cluster: a fresh embedded stack and the three services as separate processes,
started as `make run` starts them, plus a sampler of their resident memory and CPU time."""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from quartier.embedded import EmbeddedStack, Infrastructure
from quartier.processes import ServiceExited, ServiceProcesses
from quartier_shared.services import NOTIFICATIONS

INFRA_NAMES = ("kafka", "mongodb", "smtp")


class BenchError(RuntimeError):
    """A run could not be measured (a process died, or a phase exceeded its timeout)."""


def _tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its children, in bytes."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


def _tree_cpu(proc: psutil.Process) -> float:
    """User and system CPU seconds of a process and all its children."""
    times = proc.cpu_times()
    total = times.user + times.system
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


class MemorySampler:
    """Samples each process (with its children) every ``interval`` seconds in a thread and keeps
    the peak resident memory per name."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        self.interval = interval
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak_bytes: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """Stops sampling; returns the peak per name in MB (MiB)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        return {name: round(b / 2**20, 1) for name, b in self.peak_bytes.items()}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, proc in self.procs.items():
            try:
                rss = _tree_rss(proc)
            except psutil.Error:
                continue  # exited: its last sample stays
            self.peak_bytes[name] = max(self.peak_bytes[name], rss)


MACHINE = "machine"


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine was busy (all cores, all processes), so far."""
    t = psutil.cpu_times()
    return float(sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal")))


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process between two ``cpu_seconds()`` snapshots, and "other": what the rest
    of the machine used meanwhile (other programs: a sign of a disturbed measurement)."""
    used = {k: round(after[k] - before.get(k, 0.0), 2) for k in after if k != MACHINE}
    machine = after.get(MACHINE, 0.0) - before.get(MACHINE, 0.0)
    used["other"] = round(max(0.0, machine - sum(used.values())), 2)
    return used


@dataclass
class BenchCluster:
    """A fresh stack in a temporary folder and ``notifications_instances`` notifications processes;
    ``notifications_env``: settings of the notifications processes only (SMTP_RATE_PER_MINUTE)."""

    notifications_instances: int = 1
    notifications_env: dict[str, str] = field(default_factory=dict)
    keep_on_failure: bool = True
    root: Path = field(init=False)
    stack: EmbeddedStack = field(init=False)
    infra: Infrastructure = field(init=False)
    services: ServiceProcesses = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="quartier-bench-"))

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def start(self, ready_timeout: float = 120.0) -> None:
        # environ={}: always a fresh embedded Kafka, MongoDB and SMTP sink, whatever the shell says.
        self.stack = EmbeddedStack(self.root / "stack", environ={}, log_dir=self.log_dir)
        self.infra = self.stack.start()
        self.services = ServiceProcesses(
            self.infra, log_dir=self.log_dir, service_env={NOTIFICATIONS.name: self.notifications_env}
        )
        self.services.start(copies={NOTIFICATIONS.name: self.notifications_instances})
        try:
            self.services.wait_ready(timeout=ready_timeout)
        except (ServiceExited, TimeoutError) as exc:
            raise BenchError(str(exc)) from exc

    def check_alive(self) -> None:
        for name, proc in self.services.processes.items():
            if not proc.alive():
                raise BenchError(f"{name} exited during the run; see {self.services.log_path(name)}")
        for name, proc in self.stack.processes.items():
            if not proc.alive():
                raise BenchError(f"embedded {name} exited during the run; see {self.log_dir / (name + '.log')}")

    def url(self, service: str) -> str:
        return self.services.url_of(service)

    def service_pids(self) -> dict[str, int]:
        return self.services.pids()

    def infra_pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.stack.processes.items()}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each service and embedded server (with children), by this
        benchmark process itself ("bench"), and by the whole machine ("machine")."""
        found: dict[str, float] = {}
        for name, pid in {**self.service_pids(), **self.infra_pids()}.items():
            try:
                found[name] = _tree_cpu(psutil.Process(pid))
            except psutil.Error:
                continue
        own = psutil.Process().cpu_times()
        found["bench"] = own.user + own.system
        found[MACHINE] = machine_busy_seconds()
        return found

    def stop_services(self) -> None:
        if hasattr(self, "services"):
            self.services.stop()

    def stop(self, failed: bool = False) -> None:
        """Stops every process this cluster started; removes its folder unless a failed run
        should be inspected."""
        try:
            self.stop_services()
        finally:
            if hasattr(self, "stack"):
                self.stack.stop()
        if failed and self.keep_on_failure:
            return
        shutil.rmtree(self.root, ignore_errors=True)
