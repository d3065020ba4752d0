"""Actors: consent withdrawn by the person through the unsubscribe link (UnsubscribeRequested)."""

from __future__ import annotations

from datetime import UTC, datetime

from actors import handlers
from actors.consent import PERSON_VIA_LINK
from actors.domain import Actor
from quartier_shared.events import ActorUpdated, ConsentWithdrawn, EventContext, UnsubscribeRequested
from tests.unit.fakes import received
from tests.unit.test_actors_handlers import REGISTRATION, FakeActorsUnitOfWork

MANAGER = EventContext("actors", "request-1", initiated_by="subject-manager")
AT = datetime(2027, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)


async def test_an_unsubscribe_withdraws_consent_by_the_person_once() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    request = UnsubscribeRequested(actor_id=actor.id, requested_at=AT)

    await handlers.withdraw_consent_by_link(received(request, "conferences"), uow_factory=uow)

    stored: Actor = await handlers.actor_by_id(actor.id, MANAGER, uow_factory=uow)
    assert stored.consent_to_notifications is False and stored.revision == 2
    record = stored.consent
    assert record is not None and not record.given and record.by == PERSON_VIA_LINK and record.reason is None
    assert (record.basis, record.wording_version) == ("consent", "2026-11")
    assert record.at == AT.replace(microsecond=123000)
    [updated] = uow.committed(ActorUpdated)
    assert updated.payload["consent_to_notifications"] is False and updated.payload["revision"] == 2
    [withdrawn] = uow.committed(ConsentWithdrawn)
    assert withdrawn.aggregate_id == actor.id
    # ids only: nothing personal on the event
    assert set(withdrawn.payload) == {"actor_id", "revision", "withdrawn_at"} and withdrawn.payload["revision"] == 2

    # a second click, or the same request again: nothing new
    await handlers.withdraw_consent_by_link(received(request, "conferences"), uow_factory=uow)
    assert len(uow.committed(ConsentWithdrawn)) == 1 and len(uow.committed(ActorUpdated)) == 1
    again = await handlers.actor_by_id(actor.id, MANAGER, uow_factory=uow)
    assert again.revision == 2 and len(again.consent_history) == 2


async def test_an_unsubscribe_for_an_unknown_actor_is_ignored() -> None:
    uow = FakeActorsUnitOfWork()
    request = UnsubscribeRequested(actor_id="no-such-actor", requested_at=AT)
    await handlers.withdraw_consent_by_link(received(request, "conferences"), uow_factory=uow)
    assert uow.events == []


def test_an_actor_stored_before_consent_records_gets_one_by_the_person() -> None:
    old = Actor(
        id="a-old",
        name="Runder Tisch",
        kind="round_table",
        districts=("IV",),
        email="alt@example.org",
        language="de",
        consent_to_notifications=True,
    )
    changed, raised = old.unsubscribe(AT)
    assert raised is not None and changed.consent_to_notifications is False
    record = changed.consent
    assert record is not None and (record.given, record.basis, record.wording_version, record.by) == (
        False,
        "consent",
        "unknown",
        PERSON_VIA_LINK,
    )
    withdrawn, updated = raised  # the snapshot last: what compaction keeps of the actor
    assert updated.consent_to_notifications is False and withdrawn.revision == updated.revision == 2
