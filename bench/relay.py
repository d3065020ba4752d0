"""The relay-limited scenario: N invitations with the notifications service paced by
SMTP_RATE_PER_MINUTE, measured against the time the pace itself allows (the issue: 1,000
invitations at 600 a minute must take within 5 % of that limit).

The limit. ``notifications.rate_limit`` gives the n-th mail of a clock minute (n <= rate) the slot
``minute + (n - 1) * 54 s / rate``, and a mail that finds its minute full the next minute. The
k-th mail of a fan-out that starts in minute M0 therefore goes at the earliest at
``M0 + q * 60 s + r * 54 s / rate`` with ``q, r = divmod(k - 1, rate)`` (``pace_offset_seconds``;
computed here rather than imported, since the benchmark imports no service). The limit is that
moment for the N-th mail, counted from the POST: ``pace_offset_seconds(N) - (post - M0)``.

To make it the same in every run, the POST waits for the next clock minute and goes just after
it, so the whole first minute's slots are the fan-out's. The pipeline is timed as in the unlimited
scenario (from just before the POST to the N-th `InvitationSent` read from the topic), so it is
never below the limit when the pace holds; ratio = pipeline / limit.

What the run also proves: the SMTP sink received N mails, one per invitee (``mails_by_recipient``),
and `GET /conferences/{id}` shows all N `sent`, none `failed` or still `pending` (a mail the
relay pace deferred and never sent would be pending there).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path

import httpx

from .cluster import BenchCluster, cpu_used
from .pipeline import Observer, conference_body, confirm_all_sent, post_conference, register_actors, wait_for_copies

MINUTE_SECONDS = 60.0
SPREAD_SECONDS = 54.0  # notifications.rate_limit.SPREAD: the part of each minute its slots are spread over
AFTER_BOUNDARY_SECONDS = 0.05  # how long after the clock minute's start the POST is sent
SHORTEST_LIMIT_SECONDS = 10.0  # below this the service's start-up, not the pace, would set the time


def pace_offset_seconds(k: int, rate: int) -> float:
    """Seconds from the start of the fan-out's first clock minute until the pace lets the k-th
    mail (1-based) go, all earlier mails having taken their slots."""
    if k < 1 or rate < 1:
        raise ValueError("k and rate must be positive")
    minutes, earlier = divmod(k - 1, rate)
    return minutes * MINUTE_SECONDS + earlier * SPREAD_SECONDS / rate


def pace_limit_seconds(n: int, rate: int, post_offset_seconds: float) -> float:
    """The limit of N mails at ``rate`` a minute, counted from a POST sent ``post_offset_seconds``
    after its clock minute began."""
    return pace_offset_seconds(n, rate) - post_offset_seconds


def seconds_to_next_minute(now: float) -> float:
    """From ``now`` (Unix seconds) until just after the next clock minute begins; UTC minutes,
    as the pace counts them, begin where Unix time is a multiple of 60."""
    return math.floor(now / MINUTE_SECONDS + 1) * MINUTE_SECONDS + AFTER_BOUNDARY_SECONDS - now


def mails_by_recipient(maildir: Path) -> Counter[str]:
    """How many mails the SMTP sink took for each To address (headers only)."""
    found: Counter[str] = Counter()
    parser = BytesHeaderParser()
    for path in maildir.glob("*.eml"):
        found[parseaddr(str(parser.parsebytes(path.read_bytes()).get("To", "")))[1].lower()] += 1
    return found


@dataclass(frozen=True)
class RelayResult:
    n: int
    rate_per_minute: int
    setup_seconds: float
    post_offset_seconds: float  # the POST went this long after its clock minute began
    limit_seconds: float  # when the pace lets the N-th mail go, from the POST
    pipeline_seconds: float  # from just before the POST until the N-th InvitationSent was read
    ratio_to_limit: float  # pipeline / limit
    invitation_counts: dict[str, int]  # GET /conferences/{id} at the end: sent, pending, failed, total
    republished_sent_events: int
    duplicate_sent_events: int
    cpu_seconds: dict[str, float]
    load_average_1m: float


async def run_relay(cluster: BenchCluster, n: int, rate: int, setup_within_s: float) -> RelayResult:
    """N actors set up (not measured), then one conference posted just after a clock minute
    began; until all N invitations are sent and shown sent."""
    bootstrap = cluster.infra.kafka_bootstrap
    started = time.monotonic()
    await register_actors(bootstrap, n, f"bench-{uuid.uuid4()}")
    await wait_for_copies(cluster, n, setup_within_s)
    setup_seconds = time.monotonic() - started

    url = cluster.url("conferences")
    within_s = pace_offset_seconds(n, rate) * 1.5 + 120  # a pipeline this slow is no measurement
    observer = Observer(bootstrap)
    await observer.start()
    try:
        async with httpx.AsyncClient(timeout=30, headers=cluster.infra.auth_headers()) as http:
            await asyncio.sleep(seconds_to_next_minute(time.time()))  # the set-up is not measured
            load_before = os.getloadavg()[0]
            cpu_before = cluster.cpu_seconds()
            posted_at, t0 = time.time(), time.monotonic()
            conference_id, _ = await post_conference(http, url, conference_body())
            observer.conference_id = conference_id
            await observer.wait(n, t0 + within_s, cluster)
            t_last = max(observer.seen_at.values())
            cpu_after = cluster.cpu_seconds()
            counts = await confirm_all_sent(http, url, conference_id, n, within_s=max(60.0, n / 50))
    finally:
        await observer.stop()

    offset = posted_at % MINUTE_SECONDS
    limit = pace_limit_seconds(n, rate, offset)
    pipeline_seconds = t_last - t0
    return RelayResult(
        n=n,
        rate_per_minute=rate,
        setup_seconds=round(setup_seconds, 2),
        post_offset_seconds=round(offset, 3),
        limit_seconds=round(limit, 3),
        pipeline_seconds=round(pipeline_seconds, 3),
        ratio_to_limit=round(pipeline_seconds / limit, 4),
        invitation_counts={k: counts.get(k, 0) for k in ("sent", "pending", "failed", "total")},
        republished_sent_events=observer.republished,
        duplicate_sent_events=observer.duplicates,
        cpu_seconds=cpu_used(cpu_before, cpu_after),
        load_average_1m=round(load_before, 2),
    )


def check_limit(n: int, rate: int) -> None:
    """Refuses a scenario whose limit is too short to be the pace's (raises ValueError)."""
    shortest = pace_offset_seconds(n, rate) - 1.0  # a POST up to a second late
    if shortest < SHORTEST_LIMIT_SECONDS:
        raise ValueError(
            f"{n} invitations at {rate} a minute take {pace_offset_seconds(n, rate):.1f} s of pace: "
            f"too short to measure it (at least {SHORTEST_LIMIT_SECONDS:.0f} s); take a larger N or a lower rate"
        )


def is_within(ratio: float, tolerance: float) -> bool:
    """Within ``tolerance`` of the limit, on either side: below it would mean the pace let mails
    go early."""
    return abs(ratio - 1.0) <= tolerance
