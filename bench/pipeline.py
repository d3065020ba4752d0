"""The measured pipeline: N consenting actors in one district, one `POST /conferences`, and the
time until the last invitation is sent, observed on the `quartier.deliveries` topic.

Setting up the actors is not measured: their `ActorRegistered` events are published straight to
`quartier.actors`, and their `ContactChanged` to `quartier.contacts` (the envelopes the actors
service would write), then we wait until the conferences roster and the notifications contacts
hold all of them.

While the fan-out runs, ``PostProbe`` times `POST /conferences` (to a district without actors)
every ~0.5 s: how the API answers when the services are busiest.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from quartier_shared.events import (
    CONFERENCES_TOPIC,
    DELIVERIES_TOPIC,
    ActorRegistered,
    ConferenceScheduled,
    ContactChanged,
    Event,
    InvitationFailed,
    InvitationSent,
    kafka_headers,
    wrap,
)
from quartier_shared.kafka import KafkaPublisher, OutgoingMessage
from quartier_shared.services import ACTORS, CONFERENCES, NOTIFICATIONS

from .cluster import BenchCluster, BenchError, cpu_used
from .post_probe import PostProbe

DISTRICT = "IV"  # where the bench actors live
EMPTY_DISTRICT = "IX"  # no bench actor: conferences here fan out to nobody (used to time POST alone)
POLL_SECONDS = 0.5  # GET /conferences/{id} loads every invitation: never poll it faster


def conference_body(district: str = DISTRICT, title: str = "Integrationskonferenz Benchmark") -> dict[str, Any]:
    """A conference three months ahead (fictional venue)."""
    day = date.today() + timedelta(days=90)
    city = ZoneInfo("Europe/Berlin")  # the offset must be Essen's on that day (summer or winter time)
    return {
        "district": district,
        "title": title,
        "starts_at": datetime(day.year, day.month, day.day, 17, tzinfo=city).isoformat(),
        "ends_at": datetime(day.year, day.month, day.day, 20, tzinfo=city).isoformat(),
        "venue": {"name": "Bürgerhaus Beispielstadt", "address": "Beispielweg 1, 45355 Essen"},
        "agenda": ["Begrüßung", "Bericht aus dem Quartier", "Arbeitsgruppen", "Verabredungen"],
    }


def actor_events(i: int) -> tuple[ActorRegistered, ContactChanged]:
    """A fictional, consenting actor (example.org address, invented name): its registration and
    its contact data, as the actors service publishes them."""
    actor_id, language = str(uuid.uuid4()), "de" if i % 2 == 0 else "en"
    registered = ActorRegistered(
        actor_id=actor_id,
        revision=1,
        kind="welfare_association",
        districts=[DISTRICT],
        language=language,
        consent_to_notifications=True,
    )
    contact = ContactChanged(
        actor_id=actor_id,
        revision=1,
        name=f"Benchmark-Initiative Nummer {i:05d}",
        email=f"bench-{i:05d}@initiative.example.org",
        language=language,
        consent_to_notifications=True,
    )
    return registered, contact


async def register_actors(bootstrap: str, n: int, correlation_id: str) -> None:
    """Publish N actors' ActorRegistered and ContactChanged as the actors service would (same
    envelopes and headers)."""
    messages = []
    for i in range(n):
        events: tuple[Event, ...] = actor_events(i)
        for event in events:
            envelope = wrap(event, producer=ACTORS.name, correlation_id=correlation_id)
            value = envelope.model_dump_json().encode()
            key = event.aggregate_id.encode()
            messages.append(OutgoingMessage(type(event).topic, key, value, kafka_headers(envelope)))
    async with KafkaPublisher(bootstrap) as publisher:
        await publisher.publish(messages)


async def wait_for_copies(cluster: BenchCluster, n: int, within_s: float) -> None:
    """Until the conferences roster and the notifications contacts both hold N documents."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(cluster.infra.mongodb_uri)
    roster = client[CONFERENCES.database]["roster"]
    contacts = client[NOTIFICATIONS.database]["contacts"]
    deadline = time.monotonic() + within_s
    try:
        while True:
            have_roster = await roster.count_documents({})
            have_contacts = await contacts.count_documents({})
            if have_roster >= n and have_contacts >= n:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"set-up not done within {within_s:.0f} s: roster {have_roster}/{n}, contacts {have_contacts}/{n}"
                )
            cluster.check_alive()
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await client.close()


@dataclass
class Observer:
    """Reads `quartier.conferences` and `quartier.deliveries` from the start (no consumer group,
    so no group join) and notes when each invitation of one conference was sent."""

    bootstrap: str
    conference_id: str | None = None
    scheduled_at: dict[str, datetime] = field(default_factory=dict)  # conference id -> occurred_at
    sent_at: dict[str, datetime] = field(default_factory=dict)  # invitation id -> occurred_at of InvitationSent
    seen_at: dict[str, float] = field(default_factory=dict)  # invitation id -> monotonic time we read it
    failed: set[str] = field(default_factory=set)
    sent_event_ids: set[str] = field(default_factory=set)
    republished: int = 0  # the same InvitationSent event (same event id) read again
    duplicates: int = 0  # another InvitationSent event for an invitation already sent
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            CONFERENCES_TOPIC,
            DELIVERIES_TOPIC,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    self._note(record.value, now)
            if batch:
                self.changed.set()

    def _note(self, value: bytes | None, now: float) -> None:
        if not value:
            return
        envelope = json.loads(value)
        kind = envelope.get("event_type")
        payload = envelope.get("payload", {})
        if kind == ConferenceScheduled.__name__:
            self.scheduled_at[payload["conference_id"]] = datetime.fromisoformat(envelope["occurred_at"])
        elif kind in (InvitationSent.__name__, InvitationFailed.__name__):
            if self.conference_id is not None and payload.get("conference_id") != self.conference_id:
                return
            invitation_id = payload["invitation_id"]
            if kind == InvitationFailed.__name__:
                self.failed.add(invitation_id)
            elif envelope.get("event_id") in self.sent_event_ids:
                self.republished += 1  # at-least-once: the same event published again
            elif invitation_id in self.sent_at:
                self.duplicates += 1
            else:
                self.sent_event_ids.add(envelope.get("event_id", ""))
                self.sent_at[invitation_id] = datetime.fromisoformat(envelope["occurred_at"])
                self.seen_at[invitation_id] = now

    async def wait(self, n: int, deadline: float, cluster: BenchCluster) -> None:
        """Until N invitations are sent; fails on a failed invitation or at ``deadline``."""
        while len(self.sent_at) < n:
            if self.failed:
                raise BenchError(f"{len(self.failed)} invitations failed ({len(self.sent_at)}/{n} sent)")
            if self._task is not None and self._task.done():
                raise BenchError(f"the deliveries reader stopped: {self._task.exception()!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"pipeline not done in time: {len(self.sent_at)}/{n} invitations sent")
            cluster.check_alive()
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 2.0))
            except TimeoutError:
                continue


@dataclass(frozen=True)
class PipelineResult:
    n: int
    setup_seconds: float
    pipeline_seconds: float
    invitations_per_second: float
    post_conference_ms: float  # median of the POSTs of this run
    post_conference_ms_each: list[float]
    # POST /conferences to the empty district every ~0.5 s while the fan-out ran (``PostProbe``);
    # None: the fan-out ended before the first answer.
    post_during_ms_p50: float | None
    post_during_ms_p99: float | None
    post_during_ms_each: list[float]
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_max: float
    confirm_seconds: float  # from the last InvitationSent until GET /conferences/{id} shows all sent
    republished_sent_events: int  # the same InvitationSent (same event id) on the topic more than once
    duplicate_sent_events: int  # a second, different InvitationSent for one invitation
    cpu_seconds: dict[str, float]  # per process, from the POST until the last invitation was sent
    load_average_1m: float  # of the machine just before the POST


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered) - 1e-9)))
    return ordered[rank - 1]


async def post_conference(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[str, float]:
    started = time.perf_counter()
    response = await http.post(f"{url}/conferences", json=body)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 201:
        raise BenchError(f"POST /conferences answered {response.status_code}")
    return str(response.json()["id"]), elapsed_ms


async def confirm_all_sent(
    http: httpx.AsyncClient, url: str, conference_id: str, n: int, within_s: float
) -> dict[str, int]:
    """Until GET /conferences/{id} shows all N invitations sent; returns its counts (sent,
    pending, failed, total, the answers)."""
    deadline = time.monotonic() + within_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        response = await http.get(f"{url}/conferences/{conference_id}", timeout=60)
        if response.status_code == 200:
            counts = response.json()["counts"]
            if counts.get("sent") == n and counts.get("total") == n:
                return counts
        await asyncio.sleep(POLL_SECONDS)
    raise BenchError(f"GET /conferences/{{id}} does not show all {n} sent within {within_s:.0f} s: {counts}")


async def run_pipeline(cluster: BenchCluster, n: int, within_s: float, setup_within_s: float) -> PipelineResult:
    bootstrap = cluster.infra.kafka_bootstrap
    correlation = f"bench-{uuid.uuid4()}"
    started = time.monotonic()
    await register_actors(bootstrap, n, correlation)
    await wait_for_copies(cluster, n, setup_within_s)
    setup_seconds = time.monotonic() - started

    url = cluster.url("conferences")
    observer = Observer(bootstrap)
    await observer.start()
    try:
        async with httpx.AsyncClient(timeout=30, headers=cluster.infra.auth_headers()) as http:
            # Two conferences in a district without actors first: they time POST on a warm process.
            posts = [(await post_conference(http, url, conference_body(EMPTY_DISTRICT, "Probe")))[1] for _ in range(2)]
            await asyncio.sleep(1.0)  # let their (empty) fan-outs pass
            load_before = os.getloadavg()[0]
            cpu_before = cluster.cpu_seconds()
            t0 = time.monotonic()
            conference_id, post_ms = await post_conference(http, url, conference_body())
            observer.conference_id = conference_id
            posts.append(post_ms)
            probe = PostProbe(url, http.headers, conference_body(EMPTY_DISTRICT, "Probe während der Einladungen"))
            try:
                probe.start()
                await observer.wait(n, t0 + within_s, cluster)
            finally:
                during = await asyncio.to_thread(probe.stop)  # joins its thread: not on the loop
            t_last = max(observer.seen_at.values())
            cpu_after = cluster.cpu_seconds()
            await confirm_all_sent(http, url, conference_id, n, within_s=max(60.0, n / 50))
            confirm_seconds = time.monotonic() - t_last
    finally:
        await observer.stop()

    scheduled = observer.scheduled_at.get(conference_id)
    if scheduled is None:
        raise BenchError("ConferenceScheduled of the benchmark conference was not seen on its topic")
    latencies = [(sent - scheduled).total_seconds() * 1000 for sent in observer.sent_at.values()]
    pipeline_seconds = t_last - t0
    return PipelineResult(
        n=n,
        setup_seconds=round(setup_seconds, 2),
        pipeline_seconds=round(pipeline_seconds, 3),
        invitations_per_second=round(n / pipeline_seconds, 1),
        post_conference_ms=round(sorted(posts)[len(posts) // 2], 1),
        post_conference_ms_each=[round(p, 1) for p in posts],
        post_during_ms_p50=round(percentile(during, 50), 1) if during else None,
        post_during_ms_p99=round(percentile(during, 99), 1) if during else None,
        post_during_ms_each=[round(p, 1) for p in during],
        latency_ms_p50=round(percentile(latencies, 50), 1),
        latency_ms_p95=round(percentile(latencies, 95), 1),
        latency_ms_p99=round(percentile(latencies, 99), 1),
        latency_ms_max=round(max(latencies), 1),
        confirm_seconds=round(confirm_seconds, 2),
        republished_sent_events=observer.republished,
        duplicate_sent_events=observer.duplicates,
        cpu_seconds=cpu_used(cpu_before, cpu_after),
        load_average_1m=round(load_before, 2),
    )
