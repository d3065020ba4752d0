"""quartier_http_request_duration_seconds: every answer timed, labelled by the route's template so
that no id (and nothing a caller typed) becomes a label value."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from quartier_shared.http import install_http_basics


def answered(route: str, status: str) -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("quartier_http_request_duration_seconds_count", labels) or 0.0


async def test_each_answer_is_timed_by_its_route_template_never_its_path() -> None:
    app = FastAPI()
    install_http_basics(app, allowed_hosts=["testserver"])

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    before = answered("/things/{thing_id}", "200"), answered("unmatched", "404")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        assert (await client.get("/things/erika.mustermann@example.org")).status_code == 200
        assert (await client.get("/things/2")).status_code == 200
        assert (await client.get("/nowhere/erika")).status_code == 404
    assert answered("/things/{thing_id}", "200") == before[0] + 2
    assert answered("unmatched", "404") == before[1] + 1
    exposed = "\n".join(
        f"{s.name} {s.labels}" for m in REGISTRY.collect() if m.name.startswith("quartier_http") for s in m.samples
    )
    assert "erika" not in exposed and "example.org" not in exposed
