"""``python -m portal``: serve the portal (``PORTAL_PORT``, default 8000)."""

from __future__ import annotations

import uvicorn

from quartier_shared.logging import configure_logging

from .app import build
from .settings import Settings


def run() -> None:
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(build(settings), host=settings.host, port=settings.portal_port, log_config=None, access_log=False)


if __name__ == "__main__":
    run()
