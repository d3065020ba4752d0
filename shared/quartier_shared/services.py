"""The one registry of Quartier's services: name, default HTTP port and database.

Settings defaults, `quartier run`, the operator commands, the benchmark, the tests and the
deployment checks all read it here, so a service is named once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceInfo:
    name: str  # also the Python package, the consumer group and the producer in events
    port: int  # default HTTP port (make run, compose)
    database: str  # its own MongoDB database; no other service reads it


ACTORS = ServiceInfo("actors", 8001, "quartier_actors")
CONFERENCES = ServiceInfo("conferences", 8002, "quartier_conferences")
NOTIFICATIONS = ServiceInfo("notifications", 8003, "quartier_notifications")

# In start-up order: the actors service first, as its events feed the other two.
SERVICES: dict[str, ServiceInfo] = {s.name: s for s in (ACTORS, CONFERENCES, NOTIFICATIONS)}

# The staff portal: no database and no events, so it is not in SERVICES (which `make asyncapi`, the
# operator commands and the fault suite iterate); `quartier run` starts it beside them.
PORTAL_PORT = 8000
