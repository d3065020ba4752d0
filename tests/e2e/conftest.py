"""The three services as separate processes, exactly as `make run` starts them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quartier.embedded import Infrastructure
from quartier.processes import ServiceProcesses


@pytest.fixture
def services(infra: Infrastructure, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServiceProcesses]:
    # Databases of this test's own: the session's MongoDB serves every test.
    database_prefix = f"e2e_{tmp_path.name[-20:]}".replace("-", "_")
    with ServiceProcesses(infra, log_dir=tmp_path / "logs", database_prefix=database_prefix) as running:
        try:
            running.start()
            running.wait_ready()
            yield running
        finally:
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                print(running.logs(chars=4000))
