"""The group commit of outcomes on in-memory fakes: outcomes that arrive while a write is in
flight go into the next one, outcomes of different claims and events share a transaction, a
sender waits for its outcome (so at most one accepted-but-unrecorded mail per SMTP connection),
a write that fails while MongoDB is away is retried while the senders keep waiting, and an outcome
once queued is written even if nobody waits for it any more."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
from pymongo.errors import AutoReconnect

from notifications.domain import Delivery, DeliveryStatus, Lease, Outcome
from notifications.mail import OutgoingMail, message_id
from quartier_shared.events import EventContext, InvitationFailed, InvitationSent
from tests.unit.notifications.fakes import (
    POLICY,
    SMTP_CONNECTIONS,
    START,
    Notifications,
    actor,
    invitation,
)

LEASE = Lease("claim-1", START + timedelta(seconds=POLICY.lease_seconds))
FIRST = EventContext("tests", "correlation-first", causation_id="event-first")
SECOND = EventContext("tests", "correlation-second", causation_id="event-second")


async def claimed(service: Notifications, count: int, lease: Lease = LEASE) -> list[Delivery]:
    """``count`` invitation deliveries stored leased to ``lease``, as a claim of new ones is."""
    new = []
    for i in range(count):
        issued = invitation(actor(f"{lease.token}-{i}@example.org").actor_id)
        new.append(Delivery.for_invitation(issued, message_id(issued.invitation_id, "invitation", POLICY.mail_domain)))
    return await service.uow.fake_deliveries.add_claimed(new, lease)


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (no time passes: the fakes never wait)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


class FinishGate:
    """Stands in for the store's ``finish``: notes each call's delivery ids, and holds the first
    write until ``opened``."""

    def __init__(self, service: Notifications) -> None:
        self.finish = service.uow.fake_deliveries.finish
        self.calls: list[list[str]] = []
        self.opened = asyncio.Event()

    async def __call__(self, outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        self.calls.append([o.delivery.id for o in outcomes])
        await self.opened.wait()
        return await self.finish(outcomes, token, now)


def sent(d: Delivery) -> Outcome:
    return Outcome(d, DeliveryStatus.SENT)


async def test_outcomes_arriving_while_a_write_is_in_flight_go_into_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Notifications()
    recorder = service.recorder
    first, *rest = await claimed(service, 4)
    gate = FinishGate(service)
    monkeypatch.setattr(service.uow.fake_deliveries, "finish", gate)

    writing = asyncio.create_task(recorder.record(sent(first), LEASE.token, FIRST))
    await until(lambda: len(gate.calls) == 1)
    waiting = [asyncio.create_task(recorder.record(sent(d), LEASE.token, FIRST)) for d in rest]
    await until(lambda: recorder.queued == 3)
    assert not writing.done() and service.events(InvitationSent) == []  # nothing is taken for recorded early

    gate.opened.set()

    assert await asyncio.gather(writing, *waiting) == [True] * 4
    assert gate.calls == [[first.id], [d.id for d in rest]]
    assert recorder.writes == 2
    assert len(service.events(InvitationSent)) == 4


async def test_outcomes_of_different_claims_and_events_share_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Notifications()
    recorder = service.recorder
    other = Lease("claim-2", LEASE.until)
    (blocker,) = await claimed(service, 1, Lease("claim-0", LEASE.until))
    (one,) = await claimed(service, 1, LEASE)
    (two,) = await claimed(service, 1, other)
    gate = FinishGate(service)
    monkeypatch.setattr(service.uow.fake_deliveries, "finish", gate)

    blocked = asyncio.create_task(recorder.record(sent(blocker), "claim-0", FIRST))
    await until(lambda: len(gate.calls) == 1)
    both = [
        asyncio.create_task(recorder.record(sent(one), LEASE.token, FIRST)),
        asyncio.create_task(recorder.record(sent(two), other.token, SECOND)),
        # A stale claim's outcome: the delivery is held by claim-1, so it is not this claim's to record.
        asyncio.create_task(recorder.record(Outcome(one, DeliveryStatus.FAILED, "x"), "claim-stale", FIRST)),
    ]
    await until(lambda: recorder.queued == 3)
    gate.opened.set()

    assert await asyncio.gather(blocked, *both) == [True, True, True, False]
    assert recorder.writes == 2  # the three of the second write in one transaction, a finish per claim
    assert sorted(gate.calls[1:]) == sorted([[one.id], [two.id], [one.id]])
    events = {e.event_id: e for e in service.events(InvitationSent)}
    assert events[one.outcome_event_id(DeliveryStatus.SENT)].correlation_id == "correlation-first"
    assert events[two.outcome_event_id(DeliveryStatus.SENT)].correlation_id == "correlation-second"
    assert service.delivery(one.id).status is DeliveryStatus.SENT


async def test_at_most_one_accepted_mail_per_connection_waits_for_its_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash window: at any moment, mails the SMTP server took whose outcome is not recorded
    yet number at most one per connection, across the claims in flight."""
    service = Notifications()
    people = [actor(f"person{i}@example.org") for i in range(120)]
    await service.on_actor(*people)
    send = service.mailer.send
    unrecorded: list[int] = []

    async def counting(mail: OutgoingMail) -> None:
        await send(mail)
        recorded = sum(1 for d in service.uow.fake_deliveries.rows.values() if d.delivery.status.final)
        unrecorded.append(len(service.mailer.sent) - recorded)

    monkeypatch.setattr(service.mailer, "send", counting)
    await service.on_invitations(*(invitation(a.actor_id) for a in people))

    assert max(unrecorded) == SMTP_CONNECTIONS  # every connection busy, none with two
    assert service.uow.fake_deliveries.most_open_claims == 2  # claims still reserve ahead
    assert len(service.mailer.sent) == len(service.events(InvitationSent)) == 120
    assert service.recorder.writes < 120  # outcomes are grouped


async def test_while_mongodb_is_away_the_write_is_retried_and_the_senders_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Notifications()
    people = [actor(f"person{i}@example.org") for i in range(10)]
    await service.on_actor(*people)
    finish = service.uow.fake_deliveries.finish
    outages = [AutoReconnect("connection closed"), AutoReconnect("connection closed")]
    sent_during_outage: list[int] = []

    async def away_at_first(outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        if outages:
            sent_during_outage.append(len(service.mailer.sent))
            raise outages.pop()
        return await finish(outcomes, token, now)

    monkeypatch.setattr(service.uow.fake_deliveries, "finish", away_at_first)
    issued = [invitation(a.actor_id) for a in people]
    await service.on_invitations(*issued)

    assert outages == []
    assert sent_during_outage and max(sent_during_outage) <= SMTP_CONNECTIONS  # nobody went on sending
    assert service.mailer.recipients() == sorted(a.email for a in people)  # each once
    assert len(service.events(InvitationSent)) == 10  # nothing lost
    assert all(service.status(i) is DeliveryStatus.SENT for i in issued)


async def test_an_outcome_is_written_even_when_its_sender_stops_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Notifications()
    recorder = service.recorder
    blocker, d = await claimed(service, 2)
    gate = FinishGate(service)
    monkeypatch.setattr(service.uow.fake_deliveries, "finish", gate)
    first = asyncio.create_task(recorder.record(sent(blocker), LEASE.token, FIRST))
    await until(lambda: len(gate.calls) == 1)
    gone = asyncio.create_task(recorder.record(sent(d), LEASE.token, FIRST))
    await until(lambda: recorder.queued == 1)

    gone.cancel()  # the consumer is shutting down, say
    gate.opened.set()

    assert await first is True
    await until(lambda: recorder.writes == 2)
    assert service.delivery(d.id).status is DeliveryStatus.SENT
    assert len(service.events(InvitationSent)) == 2


async def test_a_write_that_fails_for_another_reason_fails_its_own_batch_only(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Notifications()
    recorder = service.recorder
    bad, good = await claimed(service, 2)
    finish = service.uow.fake_deliveries.finish

    async def breaks_on_bad(outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        if any(o.delivery.id == bad.id for o in outcomes):
            raise RuntimeError("an unexpected error")  # not MongoDB being away: not retried
        return await finish(outcomes, token, now)

    monkeypatch.setattr(service.uow.fake_deliveries, "finish", breaks_on_bad)

    with pytest.raises(RuntimeError):
        await recorder.record(sent(bad), LEASE.token, FIRST)
    assert await recorder.record(sent(good), LEASE.token, FIRST) is True

    assert service.delivery(bad.id).status is DeliveryStatus.SENDING  # its lease runs out, then it is sent again
    assert service.delivery(good.id).status is DeliveryStatus.SENT
    assert [e.event_id for e in service.events(InvitationSent)] == [good.outcome_event_id(DeliveryStatus.SENT)]


async def test_a_deferred_outcome_shares_the_write_gives_its_delivery_back_and_raises_no_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Notifications()
    recorder = service.recorder
    blocker, later, done = await claimed(service, 3)
    gate = FinishGate(service)
    monkeypatch.setattr(service.uow.fake_deliveries, "finish", gate)
    retry_at = START + timedelta(minutes=1)
    refused = Outcome(later, DeliveryStatus.DEFERRED, "SMTP 451: 4.7.0 slow down", retry_at=retry_at)

    first = asyncio.create_task(recorder.record(sent(blocker), LEASE.token, FIRST))
    await until(lambda: len(gate.calls) == 1)
    both = [
        asyncio.create_task(recorder.record(refused, LEASE.token, SECOND)),
        asyncio.create_task(recorder.record(sent(done), LEASE.token, SECOND)),
    ]
    await until(lambda: recorder.queued == 2)
    gate.opened.set()

    assert await asyncio.gather(first, *both) == [True, True, True]
    assert recorder.writes == 2
    given_back = service.delivery(later.id)
    assert (given_back.status, given_back.next_attempt_at, given_back.lease_until) == (
        DeliveryStatus.DEFERRED,
        retry_at,
        None,
    )
    # Not ended: no InvitationSent or InvitationFailed for it, only for the two that went out.
    assert sorted(e.event_id for e in service.events(InvitationSent)) == sorted(
        d.outcome_event_id(DeliveryStatus.SENT) for d in (blocker, done)
    )
    assert service.events(InvitationFailed) == []
