"""ALLOWED_HOSTS: the HTTP API answers only to the host names it is given (DNS rebinding)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from quartier_shared.http import install_http_basics
from quartier_shared.settings import ServiceSettings


def app_for(allowed_hosts: str) -> FastAPI:
    app = FastAPI()
    install_http_basics(app, ServiceSettings(allowed_hosts=allowed_hosts).allowed_host_list)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def get(app: FastAPI, host: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}") as client:
        return (await client.get("/ping")).status_code


async def test_a_host_not_on_the_list_gets_400_and_listed_ones_are_served() -> None:
    default = app_for(ServiceSettings().allowed_hosts)
    assert await get(default, "127.0.0.1") == 200
    assert await get(default, "localhost") == 200
    assert await get(default, "attacker.example.org") == 400
    compose = app_for("actors, localhost,127.0.0.1")
    assert await get(compose, "actors:8001") == 200
