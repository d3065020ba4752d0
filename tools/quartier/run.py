"""`quartier run` (what `make run` calls): the embedded stack, the three services and the staff
portal (``PORTAL_PORT``, default 8000; its session key is kept in ``var/portal/``).

Kafka, MongoDB or SMTP given in the environment (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI, SMTP_HOST)
are used as they are; the rest is started here. A service process that dies is restarted and the
restart is logged, as compose's restart policy does in production. Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quartier_shared.services import PORTAL_PORT, SERVICES

from .embedded import EmbeddedStack, wait_for_port
from .login import DEMO_USERS
from .processes import ServiceProcesses


def say(event: str, **fields: Any) -> None:
    record = {"timestamp": datetime.now(UTC).isoformat(), "service": "quartier-run", "event": event, **fields}
    print(json.dumps(record), flush=True)


STACK_ENV = "stack.env"


def service_ports(base_port: int | None = None) -> dict[str, int]:
    """Each service's own port (the registry's), or consecutive ports from ``base_port`` in registry order."""
    if base_port is None:
        return {name: service.port for name, service in SERVICES.items()}
    return {name: base_port + i for i, name in enumerate(SERVICES)}


def portal_port(base_port: int | None = None) -> int:
    """``PORTAL_PORT``, else 8000; with ``base_port`` the port after the services' ones."""
    if base_port is not None:
        return base_port + len(SERVICES)
    return int(os.environ.get("PORTAL_PORT") or PORTAL_PORT)


def session_secret(var_dir: Path) -> str:
    """The portal's session key, made once (readable by us only): sessions outlive a restart."""
    path = var_dir / "portal" / "session-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def run(var_dir: Path, base_port: int | None = None) -> int:
    stack = EmbeddedStack(var_dir, log_dir=var_dir / "logs")
    ports = service_ports(base_port)
    portal = portal_port(base_port)
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for port in [*ports.values(), portal]:
        try:
            wait_for_port(port, timeout=0.2)
        except TimeoutError:
            continue
        print(f"port {port} is already in use: is `make run` already running?", file=sys.stderr)
        return 1
    services: ServiceProcesses | None = None
    try:
        infra = stack.start()
        # Operator commands (quartier dlq/outbox) find the stack here when the environment is silent.
        (var_dir / STACK_ENV).write_text("".join(f"{k}={v}\n" for k, v in infra.env().items()))
        # The personal links in the mails open the answer page of this run's conferences service.
        public = {"PUBLIC_BASE_URL": f"http://localhost:{ports['conferences']}"}
        if os.environ.get("PUBLIC_BASE_URL"):
            public = {}
        # no log folder: their JSON lines go to this terminal
        services = ServiceProcesses(infra, env=public)
        services.start(ports)
        services.start_portal(
            portal,
            {
                "ACTORS_URL": f"http://127.0.0.1:{ports['actors']}",
                "CONFERENCES_URL": f"http://127.0.0.1:{ports['conferences']}",
                "NOTIFICATIONS_URL": f"http://127.0.0.1:{ports['notifications']}",
                "PORTAL_PUBLIC_URL": os.environ.get("PORTAL_PUBLIC_URL") or f"http://127.0.0.1:{portal}",
                "SESSION_SECRET": session_secret(var_dir),
            },
        )
        for name in services.instances:
            _started(services, name)
        supervise(services, lambda: stopping, on_ready=lambda: _banner(stack, infra.smtp_host, ports, portal))
    finally:
        say("stopping")
        if services is not None:
            services.stop()
        stack.stop()
        (var_dir / STACK_ENV).unlink(missing_ok=True)
        say("stopped")
    return 0


def _started(services: ServiceProcesses, name: str) -> None:
    instance = services.instances[name]
    say("service_process_started", name=name, pid=instance.process.pid, port=instance.port)


def supervise(services: ServiceProcesses, stopping: Callable[[], bool], on_ready: Callable[[], None]) -> None:
    """Restart dead services until asked to stop; call ``on_ready`` once all answer ready.

    One loop for both phases: a service may die while the others are still starting, and that
    must lead to a restart, not to the whole stack stopping.
    """
    restarts: dict[str, list[float]] = {name: [] for name in services.instances}
    announced = False
    while not stopping():
        time.sleep(0.5)
        for name, instance in services.instances.items():
            if stopping() or instance.process.alive():
                continue
            code = instance.process.returncode
            recent = [t for t in restarts[name] if time.monotonic() - t < 60]
            delay = min(2 ** len(recent), 30) if len(recent) >= 3 else 0.5  # back off a crash loop
            say("service_restarted", name=name, exit_code=code, restarts_last_minute=len(recent), delay_s=delay)
            time.sleep(delay)
            restarts[name] = [*recent, time.monotonic()]
            services.restart(name)
            _started(services, name)
        if not announced and services.all_ready():
            announced = True
            on_ready()


def _banner(stack: EmbeddedStack, smtp_host: str, ports: dict[str, int], portal: int) -> None:
    say("stack_ready", ports={**ports, "portal": portal})
    lines = ["", "Quartier is running:"]
    lines.append(f"  {'portal':<14} http://127.0.0.1:{portal}   (the staff portal: sign in in the browser)")
    for name, port in ports.items():
        lines.append(f"  {name:<14} http://127.0.0.1:{port}   (API docs: http://127.0.0.1:{port}/docs)")
    if "smtp" in stack.processes:
        lines.append(f"  mails          {stack.maildir}/*.eml")
    else:
        lines.append(f"  mails          sent to the SMTP server at {smtp_host}")
    if "issuer" in stack.processes:
        lines += [
            "Every API call but /health, /metrics, /asyncapi, /docs and GET /districts needs a token:",
            '  curl -H "Authorization: Bearer $(.venv/bin/quartier token --role coordinator)" '
            f"http://127.0.0.1:{ports['actors']}/actors",
            "  (roles: coordinator, quarter_manager --district IV, operator, data_protection)",
            "Demo sign-ins of the portal (the local issuer's page lists them; no password):",
            *(f"  {user.username:<22} {user.label}" for user in DEMO_USERS),
        ]
    else:
        lines.append("  tokens: from the identity provider named by AUTH_ISSUER")
    lines += [f"  logs of the embedded stack: {stack.log_dir}", "Press Ctrl-C to stop.", ""]
    print("\n".join(lines), flush=True)
