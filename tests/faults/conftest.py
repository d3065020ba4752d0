from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    marker = request.node.get_closest_marker("smtp_answers")
    c = Cluster(tmp_path, smtp_answers=list(marker.args) if marker else [])
    c.start_infra()
    try:
        yield c
    finally:
        c.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(c.logs())
