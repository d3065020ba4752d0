"""Prometheus metrics every service exposes at /metrics.

Names follow Prometheus conventions; labels are event types, topics and outcomes, never ids or
personal data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

EVENTS_PUBLISHED = Counter("quartier_events_published_total", "Events the outbox relay handed to Kafka", ["event_type"])
EVENTS_CONSUMED = Counter(
    "quartier_events_consumed_total", "Events this service's consumer handled (or dead-lettered)", ["event_type"]
)
HANDLER_SECONDS = Histogram(
    "quartier_handler_duration_seconds",
    "Time to handle one event, or one batch of events of one type",
    ["event_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEAD_LETTERS = Counter("quartier_dead_letters_total", "Messages sent to the dead-letter topic", ["topic", "error"])
OUTBOX_BACKLOG = Gauge("quartier_outbox_backlog", "Events in the outbox not yet relayed to Kafka")
CONSUMER_LAG = Gauge(
    "quartier_consumer_lag",
    "Records of each topic the service's consumer group has not committed (handled) yet",
    ["topic"],
)
KAFKA_CONNECTED = Gauge(
    "quartier_kafka_connected", "1 when Kafka answered this service's last check (a scrape, /health), else 0"
)
MAILS = Counter("quartier_mails_total", "Invitation mails by outcome", ["outcome"])
# Per attempt, not per mail (a mail retried three times counts three): what the SMTP server or the
# connection to it did. kind: authentication (our credentials refused), refused (the recipient),
# permanent (another 5xx), temporary (4xx), connection (no answer, a broken connection).
SMTP_ERRORS = Counter("quartier_smtp_errors_total", "SMTP attempts that failed, by kind", ["kind"])
SMTP_AUTH_FAILING = Gauge(
    "quartier_smtp_auth_failing", "1 while the SMTP server refuses this instance's credentials: sending is paused"
)

Refresh = Callable[[], Awaitable[None]]


def metrics_router(refresh: Refresh) -> APIRouter:
    """``refresh`` updates the gauges that are read on demand (outbox backlog, consumer lag)."""
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", include_in_schema=True, response_class=Response)
    async def metrics() -> Response:
        await refresh()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
