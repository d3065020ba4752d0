"""The outcome log and its folds on in-memory fakes: outcomes that arrive while a write is in flight
go into the next one; a sender waits for its outcome to be logged, so at most one accepted mail per
SMTP connection is unlogged; a fold records outcomes of many claims and events in one transaction,
each under its own claim; a logged outcome counts as recorded, whoever logged it (a claim folds it
before it takes the delivery over, a sweep after the takeover time); a write that fails while
MongoDB is away is retried while the senders keep waiting; an outcome once queued is logged even if
nobody waits for it any more."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
from pymongo.errors import AutoReconnect

from notifications.domain import Delivery, DeliveryStatus, Lease, Outcome, OutcomeLogEntry
from notifications.mail import OutgoingMail, message_id
from notifications.recording import OutcomeRecorder
from quartier_shared.events import EventContext, InvitationFailed, InvitationIssued, InvitationSent
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


def plain(service: Notifications, owner: str = "instance-1", senders: int = SMTP_CONNECTIONS) -> OutcomeRecorder:
    """A recorder as app.py makes one: it logs, and folds only when asked (or by its ``run``)."""
    return OutcomeRecorder(service.uow, senders=senders, now=service.clock.now, owner=owner)


async def claimed(service: Notifications, count: int, lease: Lease = LEASE) -> list[Delivery]:
    """``count`` invitation deliveries stored leased to ``lease``, as a claim of new ones is."""
    return await claimed_for(
        service, [invitation(actor(f"{lease.token}-{i}@example.org").actor_id) for i in range(count)], lease
    )


async def claimed_for(service: Notifications, issued: list[InvitationIssued], lease: Lease = LEASE) -> list[Delivery]:
    new = [Delivery.for_invitation(i, message_id(i.invitation_id, "invitation", POLICY.mail_domain)) for i in issued]
    return await service.uow.fake_deliveries.add_claimed(new, lease)


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (no time passes: the fakes never wait)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


class LogGate:
    """Stands in for the log's ``add``: notes each write's delivery ids, and holds the first until
    ``opened``."""

    def __init__(self, service: Notifications) -> None:
        self.add = service.uow.fake_outcomes.add
        self.calls: list[list[str]] = []
        self.opened = asyncio.Event()

    async def __call__(self, entry: OutcomeLogEntry) -> None:
        self.calls.append([o.delivery_id for o in entry.outcomes])
        await self.opened.wait()
        await self.add(entry)


def sent(d: Delivery) -> Outcome:
    return Outcome(d, DeliveryStatus.SENT)


async def test_outcomes_arriving_while_a_write_is_in_flight_go_into_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Notifications()
    recorder = plain(service)
    first, *rest = await claimed(service, 4)
    gate = LogGate(service)
    monkeypatch.setattr(service.uow.fake_outcomes, "add", gate)

    writing = asyncio.create_task(recorder.record(sent(first), LEASE.token, FIRST))
    await until(lambda: len(gate.calls) == 1)
    waiting = [asyncio.create_task(recorder.record(sent(d), LEASE.token, FIRST)) for d in rest]
    await until(lambda: recorder.queued == 3)
    assert not writing.done()  # nothing is taken for logged early

    gate.opened.set()
    await asyncio.gather(writing, *waiting)

    assert gate.calls == [[first.id], [d.id for d in rest]]
    assert recorder.writes == 2
    # Logged, not folded yet: the deliveries and the events follow with the fold.
    assert service.events(InvitationSent) == [] and service.delivery(first.id).status is DeliveryStatus.SENDING
    assert await recorder.fold() == 4
    assert recorder.folds == 1
    assert len(service.events(InvitationSent)) == 4
    assert service.uow.fake_outcomes.rows == {}


async def test_one_fold_records_outcomes_of_different_claims_and_events_each_under_its_own_claim() -> None:
    service = Notifications()
    recorder = plain(service)
    other = Lease("claim-2", LEASE.until)
    (one,) = await claimed(service, 1, LEASE)
    (two,) = await claimed(service, 1, other)
    await recorder.record(sent(one), LEASE.token, FIRST)
    await recorder.record(sent(two), other.token, SECOND)
    # A stale claim's outcome: the delivery is held by claim-1, so it is not this claim's to record.
    await recorder.record(Outcome(one, DeliveryStatus.FAILED, "x"), "claim-stale", FIRST)
    commits = service.uow.commits

    assert await recorder.fold() == 3

    assert service.uow.commits == commits + 1  # one transaction
    events = {e.event_id: e for e in service.events(InvitationSent)}
    assert set(events) == {d.outcome_event_id(DeliveryStatus.SENT) for d in (one, two)}
    assert events[one.outcome_event_id(DeliveryStatus.SENT)].correlation_id == "correlation-first"
    assert events[two.outcome_event_id(DeliveryStatus.SENT)].correlation_id == "correlation-second"
    assert service.events(InvitationFailed) == []
    assert service.delivery(one.id).status is DeliveryStatus.SENT


async def test_the_event_carries_the_time_the_server_answered_not_the_time_of_the_fold() -> None:
    service = Notifications()
    recorder = plain(service)
    (d,) = await claimed(service, 1)
    await recorder.record(sent(d), LEASE.token, FIRST)
    answered = service.clock.now()
    service.clock.current += timedelta(seconds=30)

    await recorder.fold()

    (event,) = service.events(InvitationSent)
    assert InvitationSent.model_validate(event.payload).sent_at == answered


async def test_at_most_one_accepted_mail_per_connection_waits_for_its_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash window: at any moment, mails the SMTP server took whose outcome is not logged
    yet number at most one per connection, across the claims in flight."""
    service = Notifications()
    people = [actor(f"person{i}@example.org") for i in range(120)]
    await service.on_actor(*people)
    send = service.mailer.send
    unlogged: list[int] = []

    async def counting(mail: OutgoingMail) -> None:
        await send(mail)
        unlogged.append(len(service.mailer.sent) - service.recorded())

    monkeypatch.setattr(service.mailer, "send", counting)
    await service.on_invitations(*(invitation(a.actor_id) for a in people))

    assert max(unlogged) == SMTP_CONNECTIONS  # every connection busy, none with two
    assert len(service.mailer.sent) == len(service.events(InvitationSent)) == 120
    assert service.recorder.writes < 120  # outcomes are logged in groups
    assert service.recorder.folds <= 3  # and folded a claim (of 50) at a time, or more


async def test_while_mongodb_is_away_the_write_is_retried_and_the_senders_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Notifications()
    people = [actor(f"person{i}@example.org") for i in range(10)]
    await service.on_actor(*people)
    add = service.uow.fake_outcomes.add
    outages = [AutoReconnect("connection closed"), AutoReconnect("connection closed")]
    sent_during_outage: list[int] = []

    async def away_at_first(entry: OutcomeLogEntry) -> None:
        if outages:
            sent_during_outage.append(len(service.mailer.sent))
            raise outages.pop()
        await add(entry)

    monkeypatch.setattr(service.uow.fake_outcomes, "add", away_at_first)
    issued = [invitation(a.actor_id) for a in people]
    await service.on_invitations(*issued)

    assert outages == []
    assert sent_during_outage and max(sent_during_outage) <= SMTP_CONNECTIONS  # nobody went on sending
    assert service.mailer.recipients() == sorted(a.email for a in people)  # each once
    assert len(service.events(InvitationSent)) == 10  # nothing lost
    assert all(service.status(i) is DeliveryStatus.SENT for i in issued)


async def test_an_outcome_is_logged_even_when_its_sender_stops_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Notifications()
    recorder = plain(service)
    blocker, d = await claimed(service, 2)
    gate = LogGate(service)
    monkeypatch.setattr(service.uow.fake_outcomes, "add", gate)
    first = asyncio.create_task(recorder.record(sent(blocker), LEASE.token, FIRST))
    await until(lambda: len(gate.calls) == 1)
    gone = asyncio.create_task(recorder.record(sent(d), LEASE.token, FIRST))
    await until(lambda: recorder.queued == 1)

    gone.cancel()  # the consumer is shutting down, say
    gate.opened.set()

    await first
    await until(lambda: recorder.writes == 2)
    await recorder.fold()
    assert service.delivery(d.id).status is DeliveryStatus.SENT
    assert len(service.events(InvitationSent)) == 2


async def test_a_write_that_fails_for_another_reason_fails_its_own_batch_only(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Notifications()
    recorder = plain(service)
    bad, good = await claimed(service, 2)
    add = service.uow.fake_outcomes.add

    async def breaks_on_bad(entry: OutcomeLogEntry) -> None:
        if any(o.delivery_id == bad.id for o in entry.outcomes):
            raise RuntimeError("an unexpected error")  # not MongoDB being away: not retried
        await add(entry)

    monkeypatch.setattr(service.uow.fake_outcomes, "add", breaks_on_bad)

    with pytest.raises(RuntimeError):
        await recorder.record(sent(bad), LEASE.token, FIRST)
    await recorder.record(sent(good), LEASE.token, FIRST)
    await recorder.fold()

    assert service.delivery(bad.id).status is DeliveryStatus.SENDING  # its lease runs out, then it is sent again
    assert service.delivery(good.id).status is DeliveryStatus.SENT
    assert [e.event_id for e in service.events(InvitationSent)] == [good.outcome_event_id(DeliveryStatus.SENT)]


async def test_a_fold_that_fails_leaves_the_log_for_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Notifications()
    recorder = plain(service)
    (d,) = await claimed(service, 1)
    await recorder.record(sent(d), LEASE.token, FIRST)
    finish = service.uow.fake_deliveries.finish

    async def broken(outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        raise RuntimeError("an unexpected error")

    monkeypatch.setattr(service.uow.fake_deliveries, "finish", broken)
    with pytest.raises(RuntimeError):
        await recorder.fold()
    assert len(service.uow.fake_outcomes.outcomes()) == 1 and service.events(InvitationSent) == []

    monkeypatch.setattr(service.uow.fake_deliveries, "finish", finish)
    assert await recorder.fold() == 1
    assert service.delivery(d.id).status is DeliveryStatus.SENT
    assert len(service.events(InvitationSent)) == 1


async def test_a_deferred_outcome_is_folded_with_the_others_gives_its_delivery_back_and_raises_no_event() -> None:
    service = Notifications()
    recorder = plain(service)
    later, done = await claimed(service, 2)
    retry_at = START + timedelta(minutes=1)
    refused = Outcome(later, DeliveryStatus.DEFERRED, "SMTP 451: 4.7.0 slow down", retry_at=retry_at)
    await recorder.record(refused, LEASE.token, SECOND)
    await recorder.record(sent(done), LEASE.token, SECOND)

    assert await recorder.fold() == 2

    given_back = service.delivery(later.id)
    assert (given_back.status, given_back.next_attempt_at, given_back.lease_until) == (
        DeliveryStatus.DEFERRED,
        retry_at,
        None,
    )
    # Not ended: no InvitationSent or InvitationFailed for it, only for the one that went out.
    assert [e.event_id for e in service.events(InvitationSent)] == [done.outcome_event_id(DeliveryStatus.SENT)]
    assert service.events(InvitationFailed) == []


async def test_an_outcome_a_dead_instance_logged_is_folded_before_its_delivery_is_taken_over() -> None:
    """The redelivered invitation of a dead instance's mail: the claim folds the logged outcome
    first, so the mail is not sent a second time."""
    service = Notifications()
    person = actor("ada@example.org")
    await service.on_actor(person)
    issued = invitation(person.actor_id)
    (d,) = await claimed_for(service, [issued])
    dead = plain(service, owner="instance-dead")
    await dead.record(sent(d), LEASE.token, FIRST)  # and then it was killed, before its fold
    service.clock.current = LEASE.until + timedelta(seconds=1)  # its lease ran out

    await service.on_invitations(issued)  # the consumer's redelivery, to another instance

    assert service.mailer.sent == []
    assert service.status(issued) is DeliveryStatus.SENT
    (event,) = service.events(InvitationSent)
    assert event.correlation_id == "correlation-first"  # the dead instance's, from its log


async def test_a_sweep_folds_what_another_instance_left_only_after_the_takeover_time() -> None:
    service = Notifications()
    (d,) = await claimed(service, 1)
    dead = plain(service, owner="instance-dead")
    alive = plain(service, owner="instance-alive")
    await dead.record(sent(d), LEASE.token, FIRST)

    assert await alive.sweep() == 0  # it may still be folding it itself
    service.clock.current += timedelta(seconds=alive.takeover_seconds + 1)
    assert await alive.sweep() == 1
    assert service.delivery(d.id).status is DeliveryStatus.SENT


async def test_the_folder_sweeps_what_another_instance_left() -> None:
    service = Notifications()
    (d,) = await claimed(service, 1)
    await plain(service, owner="instance-dead").record(sent(d), LEASE.token, FIRST)
    service.clock.current += timedelta(seconds=1)
    alive = OutcomeRecorder(service.uow, senders=SMTP_CONNECTIONS, now=service.clock.now, owner="i", takeover_seconds=0)
    folder = asyncio.create_task(alive.run())
    try:
        await until(lambda: alive.folds == 1)
    finally:
        folder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await folder
    assert service.delivery(d.id).status is DeliveryStatus.SENT
    assert len(service.events(InvitationSent)) == 1
