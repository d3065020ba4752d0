"""The sending workflow's rules on in-memory fakes: a lease held elsewhere is waited for and
taken over once it runs out (on a fake clock), a broken mail costs no other outcome and blocks no
retry, outcomes wait for the database, a contact arriving mid-way is not missed, and new
invitations go out in the claims the fan-out was tuned for."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from pymongo.errors import AutoReconnect

from notifications.domain import Delivery, DeliveryStatus, Lease, Outcome
from notifications.mail import message_id
from quartier_shared.events import InvitationSent
from tests.unit.notifications.fakes import POLICY, START, FakeMailer, Notifications, actor, invitation

LEASE = timedelta(seconds=POLICY.lease_seconds)


async def stored_by_another_instance(service: Notifications, email: str, token: str) -> Delivery:
    """An invitation whose delivery another instance stored, leased to its claim, and has not finished."""
    issued = invitation(actor(email).actor_id)
    new = Delivery.for_invitation(issued, message_id(issued.invitation_id, "invitation", POLICY.mail_domain))
    (leased,) = await service.uow.fake_deliveries.add_claimed([new], Lease(token, START + LEASE))
    return leased


async def test_a_delivery_leased_elsewhere_is_waited_for_and_taken_over_when_the_lease_runs_out() -> None:
    service = Notifications()
    ada = actor("ada@example.org")
    await service.on_actor(ada)
    leased = await stored_by_another_instance(service, "ada@example.org", token="crashed")
    issued = invitation(ada.actor_id).model_copy(update={"invitation_id": leased.invitation_id})

    await service.on_invitations(issued)  # redelivered to this instance after the other one crashed

    assert LEASE <= service.clock.waited() <= LEASE + timedelta(seconds=1)
    (mail,) = service.mailer.sent
    assert mail.message_id == leased.message_id == f"<invitation-{issued.invitation_id}@essen.example.org>"
    (sent,) = service.events(InvitationSent)
    assert sent.event_id == leased.outcome_event_id(DeliveryStatus.SENT)  # the one the other would have had
    assert service.status(issued) is DeliveryStatus.SENT


async def test_a_delivery_another_claim_is_sending_is_left_to_it_once_it_records_the_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = Notifications()
    ada = actor("ada@example.org")
    await service.on_actor(ada)
    leased = await stored_by_another_instance(service, "ada@example.org", token="busy")
    issued = invitation(ada.actor_id).model_copy(update={"invitation_id": leased.invitation_id})
    wait = service.clock.sleep

    async def holder_finishes_meanwhile(seconds: float) -> None:
        await service.uow.fake_deliveries.finish([Outcome(leased, DeliveryStatus.SENT)], "busy", service.clock.now())
        await wait(seconds)

    monkeypatch.setattr(service.clock, "sleep", holder_finishes_meanwhile)
    await service.on_invitations(issued)

    assert service.clock.waited() == timedelta(seconds=1)  # one look a second later, not the whole lease
    assert service.mailer.sent == [] and service.uow.events == []


async def test_one_broken_mail_neither_drops_its_claims_other_outcomes_nor_blocks_a_retry() -> None:
    service = Notifications(FakeMailer(failures={"kaputt@example.org": [RuntimeError("this mail cannot be made")]}))
    people = [actor(f"{name}@example.org") for name in ("eins", "zwei", "kaputt")]
    issued = [invitation(a.actor_id) for a in people]
    await service.on_actor(*people)

    with pytest.raises(RuntimeError):
        await service.on_invitations(*issued)
    assert service.mailer.recipients() == ["eins@example.org", "zwei@example.org"]
    assert len(service.events(InvitationSent)) == 2
    assert service.status(issued[2]) is DeliveryStatus.PENDING  # given back, not held until its lease ends

    await service.on_invitations(*issued)  # the consumer retries the batch

    assert service.mailer.recipients() == ["eins@example.org", "kaputt@example.org", "zwei@example.org"]
    assert len(service.events(InvitationSent)) == 3
    assert service.clock.waited() == timedelta(0)


async def test_outcomes_wait_for_the_database_and_the_mail_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    service = Notifications()
    ada = actor("ada@example.org")
    await service.on_actor(ada)
    finish = service.uow.fake_deliveries.finish
    outages = [AutoReconnect("connection closed")]

    async def away_at_first(outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        if outages:
            raise outages.pop()
        return await finish(outcomes, token, now)

    monkeypatch.setattr(service.uow.fake_deliveries, "finish", away_at_first)
    issued = invitation(ada.actor_id)
    await service.on_invitations(issued)

    assert outages == []
    assert service.mailer.recipients() == ["ada@example.org"]
    assert len(service.events(InvitationSent)) == 1
    assert service.status(issued) is DeliveryStatus.SENT


@pytest.mark.parametrize("arrives", ["before", "after"])
async def test_a_contact_arriving_while_its_invitation_is_stored_waiting_is_not_missed(
    arrives: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """update_contact saves the contact, then looks for waiting deliveries; Sending.new stores the
    delivery waiting, then looks for the contact again: however they interleave, one sends."""
    service = Notifications()
    newcomer = actor("neu@example.org")
    add_waiting = service.uow.fake_deliveries.add_waiting

    async def contact_arrives(deliveries: Sequence[Delivery]) -> None:
        if arrives == "before":  # update_contact finds nothing waiting yet
            await service.on_actor(newcomer)
        await add_waiting(deliveries)
        if arrives == "after":  # update_contact sends it; Sending.new then finds it final
            await service.on_actor(newcomer)

    monkeypatch.setattr(service.uow.fake_deliveries, "add_waiting", contact_arrives)
    await service.on_invitations(invitation(newcomer.actor_id))

    assert service.mailer.recipients() == ["neu@example.org"]
    assert len(service.events(InvitationSent)) == 1


async def test_new_invitations_go_out_in_claims_of_50_two_in_flight() -> None:
    service = Notifications()
    people = [actor(f"person{i}@example.org") for i in range(120)]
    await service.on_actor(*people)

    await service.on_invitations(*(invitation(a.actor_id) for a in people))

    assert service.uow.fake_deliveries.new_claim_sizes == [50, 50, 20]
    assert service.uow.fake_deliveries.most_open_claims == 2
    assert len(service.mailer.sent) == len(service.events(InvitationSent)) == 120
