"""A service's health against real servers: Kafka away degrades it, but it stays ready and keeps
serving its API (the outbox holds the events); the gauge quartier_kafka_connected says which."""

from __future__ import annotations

import re

import httpx

from actors.app import build
from actors.settings import Settings
from quartier.embedded import Infrastructure, free_port
from tests.helpers import actor_body, running, settings_for


def kafka_gauge(metrics: str) -> float:
    found = re.search(r"^quartier_kafka_connected (\S+)$", metrics, re.MULTILINE)
    assert found, "quartier_kafka_connected is missing from /metrics"
    return float(found[1])


async def test_without_kafka_the_service_is_ready_degraded_and_still_takes_changes(
    infra: Infrastructure, database_name: str
) -> None:
    # Nothing listens on this port: the broker is down from the start, as in an outage.
    app = build(settings_for(Settings, infra, database_name, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            ready = await client.get("/health/ready")
            details = await client.get("/health")
            metrics = (await client.get("/metrics")).text
            created = await client.post("/actors", json=actor_body(), headers=infra.auth_headers())
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"mongodb": "ok", "kafka": "down"}}
    assert details.status_code == 200
    assert details.json() == {
        "status": "degraded",
        "ready": True,
        "required": ["mongodb"],
        "checks": {"mongodb": "ok", "kafka": "down"},
    }
    assert kafka_gauge(metrics) == 0
    assert created.status_code == 201, created.text  # its events wait in the outbox


async def test_with_kafka_up_the_details_say_ok_and_the_gauge_is_one(infra: Infrastructure, database_name: str) -> None:
    app = build(settings_for(Settings, infra, database_name))
    async with running(app) as client:
        details = await client.get("/health")
        metrics = (await client.get("/metrics")).text
    assert details.status_code == 200
    assert details.json()["status"] == "ok" and details.json()["checks"] == {"mongodb": "ok", "kafka": "ok"}
    assert kafka_gauge(metrics) == 1
