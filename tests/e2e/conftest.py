"""The three services as separate processes, exactly as `make run` starts them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from quartier.embedded import Infrastructure, Process, free_port, service_process, wait_ready
from quartier_shared.services import SERVICES


@dataclass
class RunningServices:
    urls: dict[str, str]
    processes: dict[str, Process]
    log_dir: Path

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def services(infra: Infrastructure, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServices]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    database_prefix = f"e2e_{tmp_path.name[-20:]}".replace("-", "_")
    processes: dict[str, Process] = {}
    urls: dict[str, str] = {}
    for name in SERVICES:
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        processes[name] = service_process(
            name, port, infra, log_path=log_dir / f"{name}.log", MONGODB_DATABASE=f"{database_prefix}_{name}"
        ).start()
    running = RunningServices(urls, processes, log_dir)
    try:
        for name, proc in processes.items():
            wait_ready(urls[name], proc)
        yield running
    finally:
        for proc in processes.values():
            proc.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(running.logs())
