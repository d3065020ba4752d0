"""Health: liveness, readiness on the required checks only, and the details with reported ones."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from quartier_shared.http import health_router


def app_with(mongodb: bool | Exception, kafka: bool | Exception) -> FastAPI:
    async def check(outcome: bool | Exception) -> bool:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    app = FastAPI()
    app.include_router(health_router({"mongodb": lambda: check(mongodb)}, reported={"kafka": lambda: check(kafka)}))
    return app


async def answers(app: FastAPI) -> dict[str, httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        return {path: await client.get(path) for path in ("/health/live", "/health/ready", "/health")}


async def test_everything_up() -> None:
    got = await answers(app_with(mongodb=True, kafka=True))
    assert got["/health/live"].json() == {"status": "ok"}
    assert got["/health/ready"].status_code == 200
    assert got["/health/ready"].json() == {"status": "ok", "checks": {"mongodb": "ok", "kafka": "ok"}}
    assert got["/health"].status_code == 200
    assert got["/health"].json() == {
        "status": "ok",
        "ready": True,
        "required": ["mongodb"],
        "checks": {"mongodb": "ok", "kafka": "ok"},
    }


@pytest.mark.parametrize("kafka", [False, TimeoutError("broker")], ids=["down", "raises"])
async def test_kafka_down_degrades_but_the_service_stays_ready(kafka: bool | Exception) -> None:
    got = await answers(app_with(mongodb=True, kafka=kafka))
    assert got["/health/ready"].status_code == 200
    assert got["/health/ready"].json() == {"status": "ok", "checks": {"mongodb": "ok", "kafka": "down"}}
    assert got["/health"].status_code == 200
    assert got["/health"].json()["status"] == "degraded"
    assert got["/health"].json()["checks"]["kafka"] == "down"
    assert got["/health/live"].status_code == 200


@pytest.mark.parametrize("mongodb", [False, ConnectionError("mongodb")], ids=["down", "raises"])
async def test_mongodb_down_makes_the_service_unready(mongodb: bool | Exception) -> None:
    got = await answers(app_with(mongodb=mongodb, kafka=True))
    assert got["/health/ready"].status_code == 503
    assert got["/health/ready"].json() == {"status": "unavailable", "checks": {"mongodb": "down", "kafka": "ok"}}
    assert got["/health"].status_code == 503
    assert got["/health"].json()["status"] == "unavailable" and got["/health"].json()["ready"] is False
    assert got["/health/live"].status_code == 200  # alive: a restart would not bring MongoDB back
