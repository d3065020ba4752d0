"""Answers by personal link: the domain (an answer replaces the earlier one, a conference that is
over takes none) and the service layer on a fake unit of work (stored with its event, nothing
personal in the event, nothing stored when refused)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import OperationFailure

from conferences import handlers
from conferences.commands import AnswerInvitation
from conferences.domain import Conference, ConferenceGone, ConferenceStatus, Invitation, InvitationNotFound
from quartier_shared.events import InvitationAnswered, Venue
from tests.unit.test_conferences_handlers import (
    CONTEXT,
    FakeConferencesUnitOfWork,
    registered,
    roster,
    schedule_and_fan_out,
)

NAME, COMMENT = "Erika Mustermann", "Wir bringen Flyer mit."


def answering(invitation_id: str, **changes: object) -> AnswerInvitation:
    command = AnswerInvitation(
        invitation_id=invitation_id,
        answer="accepted",
        attendees=3,
        representative=NAME,
        interpreter_language="ar",
        accessibility=True,
        childcare=2,
        comment=COMMENT,
    )
    return replace(command, **changes)  # type: ignore[arg-type]


async def invited_once(uow: FakeConferencesUnitOfWork) -> tuple[Conference, Invitation]:
    await roster(uow, registered("a1", "IV"))
    conference = await schedule_and_fan_out(uow, "IV")
    [invitation] = await uow.invitations.for_conference(conference.id)
    return conference, invitation


async def test_an_answer_is_stored_on_the_invitation_with_its_event_and_nothing_personal_in_it() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, invitation = await invited_once(uow)
    now = datetime.now(UTC)

    _, answered = await handlers.answer_invitation(answering(invitation.id), CONTEXT, uow_factory=uow, now=now)

    assert answered.answer is not None
    assert (answered.answer.answer, answered.answer.attendees, answered.answer.representative) == ("accepted", 3, NAME)
    assert answered.answer.comment == COMMENT and answered.answer.answered_at == now
    stored = await uow.invitations.get(invitation.id)
    assert stored == answered and stored.status == invitation.status  # the delivery status is untouched
    [event] = uow.committed(InvitationAnswered)
    assert event.aggregate_id == invitation.id and event.correlation_id == CONTEXT.correlation_id
    assert event.payload == {
        "invitation_id": invitation.id,
        "conference_id": conference.id,
        "actor_id": "a1",
        "answer": "accepted",
        "attendees": 3,
        "interpreter_language": "ar",
        "step_free_access": True,
        "children": 2,
        "answered_at": now.isoformat().replace("+00:00", "Z"),
    }
    assert NAME not in event.model_dump_json() and COMMENT not in event.model_dump_json()


async def test_a_second_answer_replaces_the_first_with_its_time() -> None:
    uow = FakeConferencesUnitOfWork()
    _, invitation = await invited_once(uow)
    first, later = datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=5)
    await handlers.answer_invitation(answering(invitation.id), CONTEXT, uow_factory=uow, now=first)
    second = answering(invitation.id, answer="declined", attendees=1, representative=None, comment=None)
    await handlers.answer_invitation(second, CONTEXT, uow_factory=uow, now=later)

    stored = await uow.invitations.get(invitation.id)
    assert stored is not None and stored.answer is not None
    assert (stored.answer.answer, stored.answer.representative, stored.answer.answered_at) == ("declined", None, later)
    assert [e.payload["answer"] for e in uow.committed(InvitationAnswered)] == ["accepted", "declined"]


async def test_a_cancelled_or_begun_conference_takes_no_answer_and_nothing_is_stored() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, invitation = await invited_once(uow)
    with pytest.raises(ConferenceGone):
        await handlers.answer_invitation(
            answering(invitation.id), CONTEXT, uow_factory=uow, now=conference.starts_at + timedelta(seconds=1)
        )
    with pytest.raises(ConferenceGone):
        await handlers.invitation_to_answer(
            invitation.id, CONTEXT, uow_factory=uow, now=conference.starts_at + timedelta(seconds=1)
        )
    uow.conferences.rows[conference.id] = replace(conference, status=ConferenceStatus.CANCELLED)  # type: ignore[attr-defined]
    with pytest.raises(ConferenceGone):
        await handlers.answer_invitation(answering(invitation.id), CONTEXT, uow_factory=uow)
    assert (await uow.invitations.get(invitation.id)) == invitation
    assert uow.committed(InvitationAnswered) == []


async def test_an_unknown_invitation_is_not_found_and_nothing_is_stored() -> None:
    uow = FakeConferencesUnitOfWork()
    await invited_once(uow)
    with pytest.raises(InvitationNotFound):
        await handlers.answer_invitation(answering("no-such-invitation"), CONTEXT, uow_factory=uow)
    with pytest.raises(InvitationNotFound):
        await handlers.invitation_to_answer("no-such-invitation", CONTEXT, uow_factory=uow)
    assert uow.committed(InvitationAnswered) == []


async def test_the_page_finds_the_invitation_and_its_conference() -> None:
    uow = FakeConferencesUnitOfWork()
    conference, invitation = await invited_once(uow)
    assert await handlers.invitation_to_answer(invitation.id, CONTEXT, uow_factory=uow) == (conference, invitation)


def test_only_an_acceptance_counts_towards_people_and_needs() -> None:
    conference_id = "c"
    invitation = Invitation(id="i", conference_id=conference_id, actor_id="a")
    base = Conference(
        id=conference_id,
        district="IV",
        district_name="Borbeck",
        timezone="Europe/Berlin",
        title="T",
        starts_at=datetime.now(UTC) + timedelta(days=3),
        ends_at=datetime.now(UTC) + timedelta(days=3, hours=2),
        venue=Venue(name="V", address="A"),
        agenda=(),
    )
    now = datetime.now(UTC)
    for answer, coming in (("accepted", True), ("tentative", False), ("declined", False)):
        answered, _ = invitation.answered(answering("i", answer=answer), base, now)
        assert answered.answer is not None and answered.answer.coming is coming


class ConflictingOnce(FakeConferencesUnitOfWork):
    """Its first commit fails as MongoDB fails a transaction that wrote a document another one
    wrote meanwhile (the invitation's outcome, the actor's erasure)."""

    conflicts = 1

    async def commit(self) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise OperationFailure("WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]})
        await super().commit()


async def test_an_answer_that_meets_another_write_of_its_invitation_is_stored_on_the_next_attempt() -> None:
    uow = ConflictingOnce()
    uow.conflicts = 0
    _, invitation = await invited_once(uow)
    uow.conflicts = 1

    await handlers.answer_invitation(answering(invitation.id), CONTEXT, uow_factory=uow)

    assert uow.conflicts == 0
    [event] = uow.committed(InvitationAnswered)
    assert event.payload["invitation_id"] == invitation.id
    stored = await uow.invitations.get(invitation.id)
    assert stored is not None and stored.answer is not None
