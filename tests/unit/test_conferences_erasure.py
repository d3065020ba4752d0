"""Conferences: erasing an actor (GDPR Art. 17) on a fake unit of work. The answers lose their free
text and keep their counts, the roster entry is inactive for good, the confirmation is stored with
the change, and a redelivered ActorErased changes nothing and confirms with the same event id."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conferences import handlers
from conferences.domain import Invitation, InvitationNotFound, RosterEntry
from quartier_shared.events import (
    ActorErased,
    ActorErasureConfirmed,
    ActorUpdated,
    InvitationAnswered,
    InvitationIssued,
)
from tests.unit.fakes import received
from tests.unit.test_answers import COMMENT, NAME, answering
from tests.unit.test_conferences_handlers import (
    CONTEXT,
    SERVICE,
    FakeConferencesUnitOfWork,
    invited,
    registered,
    roster,
    schedule_and_fan_out,
)


async def test_erasure_removes_the_free_text_keeps_the_counts_and_confirms_once_per_service() -> None:
    uow = FakeConferencesUnitOfWork()
    await roster(uow, registered("a1", "IV"), registered("a2", "IV"))
    first = await schedule_and_fan_out(uow, "IV")
    second = await schedule_and_fan_out(uow, "IV")
    for conference in (first, second):
        by_actor = await invited(uow, conference)
        for actor_id in ("a1", "a2"):
            await handlers.answer_invitation(answering(by_actor[actor_id].id), CONTEXT, uow_factory=uow)
    before = {i.id: i for i in await every_invitation(uow)}

    erased = ActorErased(actor_id="a1", revision=2)
    await handlers.erase_actor(received(erased, SERVICE), uow_factory=uow)

    for invitation in await every_invitation(uow):
        answer, was = invitation.answer, before[invitation.id].answer
        assert answer is not None and was is not None
        if invitation.actor_id == "a1":
            assert (answer.representative, answer.comment) == (None, None)
            assert answer == replace(was, representative=None, comment=None)  # every count as it was
        else:
            assert (answer.representative, answer.comment) == (NAME, COMMENT)  # another actor's: untouched
    assert await uow.roster.get("a1") == RosterEntry("a1", ("IV",), False, True, 2, erased=True)
    [confirmation] = uow.committed(ActorErasureConfirmed)
    assert confirmation.payload["actor_id"] == "a1" and confirmation.payload["service"] == "conferences"
    assert not uow.committed(InvitationAnswered)[len(before) :]  # no event about the answers

    erased_once = await every_invitation(uow)
    await handlers.erase_actor(received(erased, SERVICE), uow_factory=uow)
    assert await every_invitation(uow) == erased_once
    again = uow.committed(ActorErasureConfirmed)
    assert len(again) == 2 and again[1].event_id == confirmation.event_id


async def every_invitation(uow: FakeConferencesUnitOfWork) -> list[Invitation]:
    return [*await uow.invitations.of_actor("a1"), *await uow.invitations.of_actor("a2")]


async def test_an_erased_actor_comes_back_by_no_event_and_answers_no_more() -> None:
    uow = FakeConferencesUnitOfWork()
    actor = registered("a1", "IV")
    await roster(uow, actor)
    conference = await schedule_and_fan_out(uow, "IV")
    invitation = (await invited(uow, conference))["a1"]
    await handlers.erase_actor(received(ActorErased(actor_id="a1", revision=2), SERVICE), uow_factory=uow)

    later = ActorUpdated.model_validate({**actor.model_dump(), "revision": 7})
    await roster(uow, actor, later)  # a replay, even one with a higher revision than the erasure
    entry = await uow.roster.get("a1")
    assert entry is not None and entry.erased and not entry.invitable
    with pytest.raises(InvitationNotFound):
        await handlers.invitation_to_answer(invitation.id, CONTEXT, uow_factory=uow)
    with pytest.raises(InvitationNotFound):
        await handlers.answer_invitation(answering(invitation.id), CONTEXT, uow_factory=uow)
    assert (await uow.invitations.of_actor("a1"))[0].answer is None
    assert await schedule_and_fan_out(uow, "IV") and not uow.committed(InvitationIssued)[1:]


async def test_erasure_of_an_actor_never_seen_is_confirmed_too() -> None:
    uow = FakeConferencesUnitOfWork()
    await handlers.erase_actor(received(ActorErased(actor_id="ghost", revision=3), SERVICE), uow_factory=uow)
    assert await uow.roster.get("ghost") == RosterEntry("ghost", (), False, False, 3, erased=True)
    [confirmation] = uow.committed(ActorErasureConfirmed)
    assert confirmation.payload["service"] == "conferences"
