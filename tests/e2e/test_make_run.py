"""`quartier run` (what `make run` calls): supervision of the service processes, and Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from quartier.processes import is_ready
from quartier_shared.services import SERVICES


def free_base_port() -> int:
    """Consecutive free ports, one per service and one for the portal (`quartier run --base-port`)."""
    for _ in range(50):
        base = random.randint(20000, 40000)
        try:
            for port in range(base, base + len(SERVICES) + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {len(SERVICES)} consecutive free ports")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready(url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout}s")
        time.sleep(0.2)


def test_a_service_that_dies_is_restarted_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    base = free_base_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "SMTP_HOST")}
    run = subprocess.Popen(
        [sys.executable, "-m", "quartier.cli", "run", "--var", str(tmp_path / "var"), "--base-port", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in run.stdout or []:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[dict[str, Any]] = []

    def next_event(name: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line.startswith("{"):
                record = json.loads(line)
                seen.append(record)
                if record.get("event") == name:
                    return record
        raise AssertionError(f"no {name} within {timeout}s; seen: {[r.get('event') for r in seen][-20:]}")

    try:
        started: dict[str, dict[str, Any]] = {}
        while len(started) < len(SERVICES) + 1:  # and the portal
            record = next_event("service_process_started")
            started[record["name"]] = record
        assert started["portal"]["port"] == base + len(SERVICES)
        conferences = started["conferences"]
        stack_env = (tmp_path / "var" / "stack.env").read_text()
        assert "KAFKA_BOOTSTRAP_SERVERS=" in stack_env and "MONGODB_URI=" in stack_env

        # Killed while the others are still starting: the stack must restart it, not give up.
        os.kill(conferences["pid"], signal.SIGKILL)
        restarted = next_event("service_restarted")
        assert restarted["name"] == "conferences" and restarted["exit_code"] == -signal.SIGKILL
        again = next_event("service_process_started")
        assert again["name"] == "conferences" and again["pid"] != conferences["pid"]
        assert next_event("stack_ready")["ports"]["portal"] == base + len(SERVICES)
        portal = f"http://127.0.0.1:{base + len(SERVICES)}"
        assert "/login" in httpx.get(portal, timeout=5).text  # the sign-in button

        # Killed while running.
        os.kill(again["pid"], signal.SIGKILL)
        assert next_event("service_restarted")["name"] == "conferences"
        third = next_event("service_process_started")
        assert third["name"] == "conferences" and third["pid"] not in (conferences["pid"], again["pid"])
        wait_ready(f"http://127.0.0.1:{conferences['port']}")

        children = [r["pid"] for r in started.values()] + [again["pid"], third["pid"]]
        run.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert run.wait(60) == 0
        next_event("stopped", timeout=5)
        # `quartier run` waited for each of its processes before it said "stopped".
        assert [pid for pid in children if alive(pid)] == []
        assert not (tmp_path / "var" / "stack.env").exists()
    finally:
        if run.poll() is None:
            run.kill()
