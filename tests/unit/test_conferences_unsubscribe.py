"""Conferences: the unsubscribe request the page records, and "unsubscribed" from the roster copy."""

from __future__ import annotations

from datetime import UTC, datetime

from conferences import handlers
from quartier_shared.events import ActorUpdated, UnsubscribeRequested
from tests.helpers import actor_registered
from tests.unit.test_conferences_handlers import CONTEXT, FakeConferencesUnitOfWork, roster, schedule_and_fan_out

AT = datetime(2027, 1, 5, 10, 0, tzinfo=UTC)


async def test_the_page_records_an_unsubscribe_request_with_the_actor_id_only() -> None:
    uow = FakeConferencesUnitOfWork()
    await handlers.request_unsubscribe("actor-1", CONTEXT, uow_factory=uow, now=AT)
    [requested] = uow.committed(UnsubscribeRequested)
    assert requested.aggregate_id == "actor-1"
    assert requested.payload == {"actor_id": "actor-1", "requested_at": AT.isoformat().replace("+00:00", "Z")}


async def test_an_invitee_who_withdrew_consent_shows_as_unsubscribed() -> None:
    uow = FakeConferencesUnitOfWork()
    staying, leaving = actor_registered("IV"), actor_registered("IV")
    await roster(uow, staying, leaving)
    conference = await schedule_and_fan_out(uow, "IV")
    actors = {i.actor_id for i in await uow.invitations.for_conference(conference.id)}
    assert actors == {staying.actor_id, leaving.actor_id}
    assert await handlers.unsubscribed_among(actors, CONTEXT, uow_factory=uow) == set()

    withdrawn = ActorUpdated(**{**leaving.model_dump(), "revision": 2, "consent_to_notifications": False})
    await roster(uow, withdrawn)
    assert await handlers.unsubscribed_among(actors, CONTEXT, uow_factory=uow) == {leaving.actor_id}
    # A placeholder the roster holds for an actor it never heard of is not "unsubscribed".
    await uow.roster.hold(["never-heard-of"])
    assert await handlers.unsubscribed_among({"never-heard-of"}, CONTEXT, uow_factory=uow) == set()
