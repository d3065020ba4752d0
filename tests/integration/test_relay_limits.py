"""Mail through a relay that limits messages per minute (issue 15): the notifications service
against the real broker and database and a real SMTP server that takes ``PER_MINUTE`` mails a
minute and answers 451 beyond, as Exchange or a data centre's relay does.

Time is a fast clock shared by the relay (its minute) and the service (leases, deferrals, the
pace): ``SPEED`` times real time, and the test moves it on a minute at a time and has the service
send what is due (``app.state.deferred``), so an hour of a relay's pace takes seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from notifications import rate_limit
from notifications.app import build
from notifications.deferrals import PACED
from notifications.rate_limit import MongoPace
from notifications.settings import Settings
from quartier.embedded import Infrastructure, free_port
from tests.helpers import eventually, running, settings_for
from tests.integration.test_notifications_service import outcomes, send
from tests.unit.notifications.fakes import CONFERENCE, START, actor, invitation

PER_MINUTE = 30
INVITEES = 80
SPEED = 30  # a minute of the relay's in two seconds


class Relay:
    """Takes ``per_minute`` mails a minute of ``clock``, and answers 451 to the rest."""

    def __init__(self, clock: FastClock, per_minute: int) -> None:
        self.clock, self.per_minute = clock, per_minute
        self.taken: Counter[datetime] = Counter()  # by minute
        self.refused = 0
        self.received: list[str] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        minute = self.clock.now().replace(second=0, microsecond=0)
        if self.taken[minute] >= self.per_minute:
            self.refused += 1
            return "451 4.7.0 Message rate limit exceeded, try again later"
        self.taken[minute] += 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"


class FastClock:
    """Time ``SPEED`` times as fast as the real one, from ``START``, and moved on by ``advance``:
    mails waiting side by side wake in the order of their slots, as they would in real time."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return START + self.offset + timedelta(seconds=(time.monotonic() - self.began) * SPEED)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / SPEED)

    def advance(self, span: timedelta) -> None:
        self.offset += span


async def invitation_statuses(app: FastAPI) -> Counter[str]:
    deliveries = app.state.runtime.db["deliveries"]
    return Counter([doc["status"] async for doc in deliveries.find({"kind": "invitation"}, {"status": 1})])


async def deliver_all(infra: Infrastructure, database: str, **settings: Any) -> Relay:
    """Invite ``INVITEES`` actors through the relay, moving the clock a minute at a time until
    every invitation is final; returns the relay."""
    clock = FastClock()
    relay = Relay(clock, PER_MINUTE)
    controller = Controller(relay, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        # One attempt per claim: a 451 defers the mail at once (no quick retries within the minute).
        # Leases long enough in fast time that none runs out while the instance is busy with it.
        chosen = {"smtp_port": controller.port, "smtp_max_attempts": 1, "delivery_lease_seconds": 3600} | settings
        app = build(settings_for(Settings, infra, database, **chosen), clock=clock)
        people = [actor(f"verein-{n}@example.org") for n in range(INVITEES)]
        async with running(app, infra.auth_headers("operator")) as client:
            await send(infra, *people)
            await send(infra, *(invitation(p.actor_id) for p in people))

            async def first_attempts_made() -> bool:
                statuses = await invitation_statuses(app)
                return statuses["sent"] + statuses["deferred"] + statuses["failed"] == INVITEES

            await eventually(first_attempts_made, timeout=120)
            # What operators see of a deferred mail: when it is tried again, and why.
            listed = await client.get("/deliveries", params={"conference_id": CONFERENCE.conference_id, "limit": 100})
            for d in listed.json():
                if d["status"] == "deferred":
                    assert d["next_attempt_at"] and d["deferrals"] <= 1, d
                    assert d["reason"].startswith("SMTP 451") or d["reason"] == PACED, d
            for _ in range(60):  # minutes of the fake clock: far more than the relay needs
                if (await invitation_statuses(app))["deferred"] == 0:
                    break
                clock.advance(timedelta(minutes=1))
                while await app.state.deferred.send_due():
                    pass
            events = await outcomes(infra, INVITEES)
            assert await invitation_statuses(app) == Counter({"sent": INVITEES})
            listed = await client.get("/deliveries", params={"conference_id": CONFERENCE.conference_id, "limit": 100})
            assert {(d["status"], d["next_attempt_at"]) for d in listed.json()} == {("sent", None)}
        assert Counter(e.event_type for e in events) == Counter({"InvitationSent": INVITEES})
        # Sent late or not, each in the trail of the request that issued it.
        assert {e.correlation_id for e in events} == {"test-correlation"}
        assert sorted(relay.received) == sorted(p.email for p in people)  # each once
        assert max(relay.taken.values()) <= PER_MINUTE
        return relay
    finally:
        controller.stop()


async def test_a_relay_taking_30_a_minute_gets_every_invitation_without_one_failed(
    infra: Infrastructure, database_name: str
) -> None:
    relay = await deliver_all(infra, database_name)

    assert relay.refused > 0  # it did push back (how often depends on how fast the first pass went)


async def test_with_the_relays_rate_set_the_service_keeps_to_it(infra: Infrastructure, database_name: str) -> None:
    relay = await deliver_all(infra, database_name, smtp_rate_per_minute=PER_MINUTE)

    # The pace spreads each minute's mails over it: the relay hardly has to refuse one (only a mail
    # held up past the end of its minute, on a busy machine, is refused and deferred).
    assert relay.refused <= PER_MINUTE // 2


async def test_two_instances_share_one_pace_and_spread_each_minute(mongo_uri: str, database_name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        db = client[database_name]
        await rate_limit.create_indexes(db)
        one, two = MongoPace(db, PER_MINUTE), MongoPace(db, PER_MINUTE)  # two instances' senders
        now = START + timedelta(seconds=10)

        slots = await asyncio.gather(*(pace.slot(now) for pace in [one, two] * 50))
    finally:
        await client.close()

    by_minute = Counter(slot.replace(second=0, microsecond=0) for slot in slots)
    assert sorted(by_minute.items()) == [
        (START, PER_MINUTE),
        (START + timedelta(minutes=1), PER_MINUTE),
        (START + timedelta(minutes=2), PER_MINUTE),
        (START + timedelta(minutes=3), 10),
    ]
    assert min(slots) == now  # none before now: the slots of the minute already past go now
    later = sorted(slot for slot in slots if slot >= START + timedelta(minutes=1))
    # Spread over the first 54 seconds of each minute, so a mail a moment late still counts in its own.
    assert {b - a for a, b in itertools.pairwise(later) if a.minute == b.minute} == {timedelta(seconds=1.8)}
    assert max(slot.second for slot in later) == 52
