"""Temporary refusals defer a mail instead of failing it (notifications.deferrals and
deferred_sending), on the fakes: time is the fake clock's, moved by the test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest

from notifications import handlers
from notifications.deferrals import PACED, TOO_LATE, Deferral
from notifications.deferred_sending import DeferredSending
from notifications.domain import Delivery, DeliveryStatus
from notifications.mail import OutgoingMail
from notifications.recording import OutcomeRecorder
from notifications.sending import STARTED, SendingPolicy
from notifications.smtp import MailAuthError, TemporaryMailError
from quartier_shared.events import InvitationFailed, InvitationIssued, InvitationSent
from tests.unit.fakes import received
from tests.unit.notifications.fakes import (
    POLICY,
    SMTP_CONNECTIONS,
    START,
    FakeClock,
    FakeMailer,
    Notifications,
    actor,
    cancelled,
    invitation,
    updated,
)

BUSY = "SMTP 451: 4.7.0 too many messages, slow down"


def busy(times: int) -> list[Exception]:
    return [TemporaryMailError(BUSY) for _ in range(times)]


def worker(service: Notifications, deferral: Deferral | None = None) -> DeferredSending:
    policy = replace(POLICY, deferral=deferral) if deferral else POLICY
    return DeferredSending(service.sending(policy), service="notifications")


async def invited(
    service: Notifications, email: str, *, deferral: Deferral | None = None, starts_in: timedelta | None = None
) -> InvitationIssued:
    """The invitation of a new actor with this address, handled (its first attempt made)."""
    person = actor(email)
    issued = invitation(person.actor_id)
    if starts_in is not None:
        starts_at = service.clock.now() + starts_in
        conference = issued.conference.model_copy(
            update={"starts_at": starts_at, "ends_at": starts_at + timedelta(hours=2)}
        )
        issued = issued.model_copy(update={"conference": conference})
    await service.on_actor(person)
    policy = replace(POLICY, deferral=deferral) if deferral else POLICY
    await first_attempt(service, issued, policy)
    return issued


async def first_attempt(service: Notifications, issued: InvitationIssued, policy: SendingPolicy) -> None:
    """The consumer's handling of ``issued`` under ``policy``."""
    await handlers.send_invitations(
        [received(issued, "notifications")],
        sending=service.sending(policy),
    )


def stored(service: Notifications, issued: InvitationIssued) -> Delivery:
    return service.delivery(Delivery.id_for(issued.invitation_id, "invitation"))


async def until_final(service: Notifications, deferred: DeferredSending, issued: InvitationIssued) -> list[datetime]:
    """Move the clock to each next attempt and send what is due, until the delivery ended; returns
    the times of the attempts."""
    attempts = []
    while (d := stored(service, issued)).status is DeliveryStatus.DEFERRED:
        assert d.next_attempt_at is not None
        service.clock.current = d.next_attempt_at
        attempts.append(service.clock.now())
        assert await deferred.send_due() == 1
    return attempts


async def test_a_busy_relay_defers_the_invitation_and_it_goes_out_when_due() -> None:
    service = Notifications(FakeMailer(failures={"verein@example.org": busy(1)}))
    issued = await invited(service, "verein@example.org")

    d = stored(service, issued)
    assert (d.status, d.reason, d.deferrals, d.deferred_since) == (DeliveryStatus.DEFERRED, BUSY, 1, START)
    assert d.next_attempt_at is not None and START + timedelta(seconds=30) <= d.next_attempt_at <= START + timedelta(
        minutes=1
    )
    assert service.events(InvitationFailed) == [] and service.events(InvitationSent) == []  # still pending
    deferred = worker(service)
    assert await deferred.send_due() == 0  # not due yet

    service.clock.current = d.next_attempt_at
    assert await deferred.send_due() == 1

    assert stored(service, issued).status is DeliveryStatus.SENT
    (sent,) = service.events(InvitationSent)
    assert sent.payload["invitation_id"] == issued.invitation_id
    # Caused by the InvitationIssued it answers, in the trail of the request that issued it.
    assert sent.correlation_id == "test-correlation" and sent.causation_id is not None
    assert sent.causation_id == stored(service, issued).trigger.causation_id  # type: ignore[union-attr]
    assert service.mailer.recipients() == ["verein@example.org"]


async def test_pauses_double_up_to_the_longest_and_the_invitation_fails_after_retry_for_with_the_last_answer() -> None:
    service = Notifications(FakeMailer(failures={"verein@example.org": busy(100)}))
    deferral = Deferral(retry_for=timedelta(hours=2), longest_pause=timedelta(minutes=16))
    issued = await invited(service, "verein@example.org", deferral=deferral)

    attempts = [START, *await until_final(service, worker(service, deferral), issued)]

    pauses = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(attempts)]
    for n, pause in enumerate(pauses[:-1]):  # the last one is cut short by the deadline
        longest = min(2**n, 16)  # minutes: 1, 2, 4, 8, 16, 16, ...
        assert longest / 2 <= pause <= longest, pauses
    assert attempts[-1] == START + timedelta(hours=2)  # the last attempt at the deadline, not after it
    d = stored(service, issued)
    assert d.status is DeliveryStatus.FAILED and d.reason == f"{BUSY} (tried for 2 h)"
    (failed,) = service.events(InvitationFailed)
    assert failed.payload["reason"] == d.reason
    assert service.mailer.sent == []


async def test_a_next_attempt_after_the_start_fails_the_invitation_now_as_too_late() -> None:
    service = Notifications(FakeMailer(failures={"verein@example.org": busy(1)}))
    issued = await invited(service, "verein@example.org", starts_in=timedelta(seconds=20))

    d = stored(service, issued)
    assert d.status is DeliveryStatus.FAILED and d.reason == f"{TOO_LATE} ({BUSY})"
    assert [e.payload["reason"] for e in service.events(InvitationFailed)] == [d.reason]


async def test_a_deferred_invitation_due_after_the_start_is_not_sent_but_failed_too_late() -> None:
    service = Notifications(FakeMailer(failures={"verein@example.org": busy(1)}))
    issued = await invited(service, "verein@example.org", starts_in=timedelta(minutes=5))
    service.clock.current += timedelta(minutes=6)  # the instances were down until after the start

    assert await worker(service).send_due() == 1

    assert service.mailer.sent == []
    assert stored(service, issued).status is DeliveryStatus.FAILED
    assert "too late" in STARTED and stored(service, issued).reason == STARTED


async def test_refused_credentials_fail_nothing_and_the_mails_go_out_once_a_login_succeeds() -> None:
    refused: list[Exception] = [
        MailAuthError("not sent yet: the SMTP server refused the credentials (SMTP 535)", 300) for _ in range(40)
    ]
    service = Notifications(FakeMailer(failures={"verein@example.org": refused}))
    deferral = Deferral(retry_for=timedelta(hours=1))
    issued = await invited(service, "verein@example.org", deferral=deferral)

    attempts = await until_final(service, worker(service, deferral), issued)

    # 40 refusals, 5 minutes apart: over 3 hours, well past SMTP_RETRY_FOR, and still not failed.
    assert len(attempts) == 40 and attempts[-1] - START == timedelta(minutes=5 * 40)
    assert stored(service, issued).status is DeliveryStatus.SENT
    assert service.events(InvitationFailed) == [] and len(service.events(InvitationSent)) == 1
    assert stored(service, issued).deferrals == 0  # refused credentials are not the mail's refusals


async def test_a_cancellation_stops_a_deferred_invitation() -> None:
    service = Notifications(FakeMailer(failures={"verein@example.org": busy(1)}))
    issued = await invited(service, "verein@example.org")

    await service.on_cancellations(cancelled(issued))
    service.clock.current += timedelta(hours=1)
    assert await worker(service).send_due() == 0

    assert stored(service, issued).status is DeliveryStatus.CANCELLED
    assert service.mailer.sent == []  # neither the invitation nor a cancellation of it


async def test_an_update_of_a_deferred_invitation_makes_it_go_out_with_the_new_details() -> None:
    service = Notifications(FakeMailer(failures={"verein@example.org": busy(1)}))
    issued = await invited(service, "verein@example.org")

    await service.on_updates(updated(issued, title="Stadtteilkonferenz Borbeck"))
    assert stored(service, issued).status is DeliveryStatus.DEFERRED  # not sent: no update mail, new details
    service.clock.current += timedelta(hours=1)
    assert await worker(service).send_due() == 1

    (mail,) = service.mailer.sent
    assert message_from_bytes(mail.data, policy=default)["Subject"].startswith("Einladung: Stadtteilkonferenz Borbeck")
    assert stored(service, issued).status is DeliveryStatus.SENT


class SlowRelay:
    """A pace whose next slot is ``wait`` away, taking ``taking`` of the clock to give it (the
    mails before it in the claim); ``meanwhile`` runs while the slot is taken."""

    def __init__(
        self,
        clock: FakeClock,
        wait: timedelta,
        taking: timedelta = timedelta(0),
        meanwhile: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.clock, self.wait, self.taking, self.meanwhile = clock, wait, taking, meanwhile
        self.slots_taken = 0

    async def slot(self, now: datetime) -> datetime:
        self.slots_taken += 1
        if self.meanwhile is not None:
            await self.meanwhile()
        self.clock.current += self.taking
        return self.clock.now() + self.wait


async def test_a_mail_whose_slot_is_far_off_is_deferred_to_it_and_keeps_it() -> None:
    service = Notifications()
    relay = SlowRelay(service.clock, timedelta(minutes=10))
    person = actor("verein@example.org")
    issued = invitation(person.actor_id)
    await service.on_actor(person)

    await first_attempt(service, issued, replace(POLICY, pace=relay))

    d = stored(service, issued)
    slot = START + timedelta(minutes=10)
    assert (d.status, d.reason, d.next_attempt_at, d.deferrals) == (DeliveryStatus.DEFERRED, PACED, slot, 0)
    assert service.clock.waited() == timedelta(0) and service.mailer.sent == []  # nothing held meanwhile
    service.clock.current = slot
    deferred = DeferredSending(service.sending(replace(POLICY, pace=relay)), service="notifications")
    assert await deferred.send_due() == 1
    assert stored(service, issued).status is DeliveryStatus.SENT
    assert relay.slots_taken == 1  # the slot it was deferred to, not a second one


async def test_a_mail_waiting_for_its_slot_past_its_lease_renews_it_first() -> None:
    service = Notifications()
    person = actor("verein@example.org")
    issued = invitation(person.actor_id)
    await service.on_actor(person)
    # 40 seconds into its claim, the mail gets a slot 50 seconds on: past the lease's last minute.
    relay = SlowRelay(service.clock, timedelta(seconds=50), taking=timedelta(seconds=40))

    await first_attempt(service, issued, replace(POLICY, pace=relay))

    assert service.clock.waited() == timedelta(seconds=90)
    d = stored(service, issued)
    assert d.status is DeliveryStatus.SENT
    assert d.lease_until == START + timedelta(seconds=90 + POLICY.lease_seconds)  # renewed before the wait


async def test_a_mail_whose_delivery_was_taken_while_it_waited_for_its_slot_is_not_sent() -> None:
    service = Notifications()
    person = actor("verein@example.org")
    issued = invitation(person.actor_id)
    await service.on_actor(person)
    erased = service.uow.fake_deliveries.cancel_unsent_of_actor
    # The actor is erased while the mail waits: its deliveries are failed and their claims dropped.
    relay = SlowRelay(
        service.clock,
        timedelta(seconds=50),
        taking=timedelta(seconds=40),
        meanwhile=lambda: erased(person.actor_id, "not sent: erased", service.clock.now()),
    )

    await first_attempt(service, issued, replace(POLICY, pace=relay))

    assert service.mailer.sent == []
    assert stored(service, issued).status is DeliveryStatus.FAILED


class HangingMailer(FakeMailer):
    """A server that takes its time: each mail waits until the test lets it through."""

    def __init__(self) -> None:
        super().__init__()
        self.through = asyncio.Event()

    async def send(self, mail: OutgoingMail) -> None:
        await self.through.wait()
        await super().send(mail)


async def test_a_slow_send_renews_its_lease_while_it_runs() -> None:
    mailer = HangingMailer()
    service = Notifications(mailer)
    person = actor("verein@example.org")
    issued = invitation(person.actor_id)
    await service.on_actor(person)
    renewals: list[datetime] = []
    renewed_twice = asyncio.Event()
    renew = service.uow.fake_deliveries.renew

    async def counted(delivery_id: str, token: str, until: datetime) -> bool:
        renewals.append(until)
        if len(renewals) == 2:
            renewed_twice.set()
        return await renew(delivery_id, token, until)

    service.uow.fake_deliveries.renew = counted  # type: ignore[method-assign]
    # A lease of a fifth of a second (of real time, as the renewals go by it), to see it renewed.
    sending = asyncio.create_task(first_attempt(service, issued, replace(POLICY, lease_seconds=0.2)))

    await asyncio.wait_for(renewed_twice.wait(), timeout=30)
    mailer.through.set()
    await sending

    assert stored(service, issued).status is DeliveryStatus.SENT
    assert mailer.recipients() == ["verein@example.org"]


async def test_the_worker_sends_in_the_instances_sender_slots_one_unrecorded_mail_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crash window holds for deferred mails too: the worker's claim of every due delivery
    sends them through the recorder's sender slots, as a new claim does."""
    people = [actor(f"person{i}@example.org") for i in range(30)]
    service = Notifications(FakeMailer(failures={p.email: busy(1) for p in people}))
    await service.on_actor(*people)
    issued = [invitation(p.actor_id) for p in people]
    await service.on_invitations(*issued)
    assert all(service.status(i) is DeliveryStatus.DEFERRED for i in issued)
    send = service.mailer.send
    unrecorded: list[int] = []

    async def counting(mail: OutgoingMail) -> None:
        await send(mail)
        unrecorded.append(len(service.mailer.sent) - service.recorded())

    monkeypatch.setattr(service.mailer, "send", counting)
    service.clock.current = START + timedelta(minutes=1)  # every first pause is over

    assert await worker(service).send_due() == 30

    assert max(unrecorded) == SMTP_CONNECTIONS  # every connection busy, none with two
    assert len(service.events(InvitationSent)) == 30 and service.mailer.recipients() == sorted(p.email for p in people)


async def test_a_mail_waiting_for_a_sender_has_its_lease_renewed_meanwhile() -> None:
    """A claim's mails queue for the instance's senders (one per SMTP connection): the lease of one
    still waiting is renewed as that of one being sent, so that no other claim takes it over."""
    mailer = HangingMailer()
    service = Notifications(mailer)
    service.recorder = OutcomeRecorder(service.uow, senders=1, now=service.clock.now, owner="tests-1")  # one connection
    people = [actor("verein@example.org"), actor("schule@example.org")]
    await service.on_actor(*people)
    renewed: set[str] = set()
    both_renewed = asyncio.Event()
    renew = service.uow.fake_deliveries.renew

    async def counted(delivery_id: str, token: str, until: datetime) -> bool:
        renewed.add(delivery_id)
        if len(renewed) == 2:
            both_renewed.set()
        return await renew(delivery_id, token, until)

    service.uow.fake_deliveries.renew = counted  # type: ignore[method-assign]
    # A lease of a fifth of a second (of real time, as the renewals go by it), to see it renewed.
    sending = asyncio.create_task(
        handlers.send_invitations(
            [received(invitation(p.actor_id), "notifications") for p in people],
            sending=service.sending(replace(POLICY, lease_seconds=0.2)),
        )
    )

    await asyncio.wait_for(both_renewed.wait(), timeout=30)  # the one sent, and the one waiting
    assert mailer.sent == []
    mailer.through.set()
    await sending

    assert mailer.recipients() == ["schule@example.org", "verein@example.org"]
    assert len(service.events(InvitationSent)) == 2


class EnteringMailer(HangingMailer):
    """A ``HangingMailer`` that notes whose mail it has begun to send."""

    def __init__(self) -> None:
        super().__init__()
        self.entered: list[str] = []

    async def send(self, mail: OutgoingMail) -> None:
        self.entered.append(mail.recipient)
        await super().send(mail)


async def test_a_queued_mail_gets_its_sender_even_when_its_renewal_would_lose_a_cancellation() -> None:
    """On Python 3.11 a cancellation arriving as MongoDB answers is lost (pymongo awaits its socket
    with asyncio.wait_for): a renewal stopped by cancelling it renewed on for ever and held its
    sender. Here the queued mail's renewal loses any cancellation, as pymongo's may."""
    mailer = EnteringMailer()
    service = Notifications(mailer)
    service.recorder = OutcomeRecorder(service.uow, senders=1, now=service.clock.now, owner="tests-1")  # one connection
    people = [actor("verein@example.org"), actor("schule@example.org")]
    await service.on_actor(*people)
    emails = {p.actor_id: p.email for p in people}
    queued_renewal, answered = asyncio.Event(), asyncio.Event()
    renew = service.uow.fake_deliveries.renew

    async def losing_a_cancellation(delivery_id: str, token: str, until: datetime) -> bool:
        if emails[service.delivery(delivery_id).actor_id] not in mailer.entered:  # the queued one
            queued_renewal.set()
            with contextlib.suppress(asyncio.CancelledError):  # lost, as pymongo's may be
                await answered.wait()
        return await renew(delivery_id, token, until)

    service.uow.fake_deliveries.renew = losing_a_cancellation  # type: ignore[method-assign]
    sending = asyncio.create_task(
        handlers.send_invitations(
            [received(invitation(p.actor_id), "notifications") for p in people],
            sending=service.sending(replace(POLICY, lease_seconds=0.2)),
        )
    )
    await asyncio.wait_for(queued_renewal.wait(), timeout=30)
    mailer.through.set()  # the first mail goes out; the queued one gets the sender while renewing
    for _ in range(100):
        await asyncio.sleep(0)
    answered.set()

    await asyncio.wait_for(sending, timeout=30)
    assert mailer.recipients() == ["schule@example.org", "verein@example.org"]
