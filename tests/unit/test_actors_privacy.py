"""Actors: audit of reads, export and erasure with its confirmations, on a fake unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from actors import handlers
from actors.commands import EraseActor, UpdateActor
from actors.domain import ActorIsErased, ActorNotFound
from quartier_shared.events import ActorErased, ActorErasureConfirmed, EventContext
from quartier_shared.pagination import PageRequest, decode_cursor
from tests.unit.fakes import received
from tests.unit.test_actors_handlers import REGISTRATION, FakeActorsUnitOfWork

MANAGER = EventContext("actors", "request-1", initiated_by="subject-manager")
OFFICER = EventContext("actors", "request-2", initiated_by="subject-dpo")


async def test_reads_and_list_pages_are_audited_with_one_write_each_and_no_data() -> None:
    uow = FakeActorsUnitOfWork()
    one = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    two = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    assert uow.audit_log.rows == {}  # registering is not a read

    await handlers.read_actor(one.id, MANAGER, uow_factory=uow)
    await handlers.actors_by_district("IV", False, MANAGER, uow_factory=uow)
    assert uow.audit_log.writes == 2  # one per request, however many actors it shows
    entries = list(uow.audit_log.rows.values())
    assert sorted((e.action, e.actor_id, e.by) for e in entries) == sorted(
        [("read", one.id, "subject-manager"), ("list", one.id, "subject-manager"), ("list", two.id, "subject-manager")]
    )
    assert all(REGISTRATION.email not in repr(e) and REGISTRATION.name not in repr(e) for e in entries)

    def refuse(_: object) -> None:
        raise PermissionError

    with pytest.raises(PermissionError):
        await handlers.read_actor(two.id, MANAGER, uow_factory=uow, may_see=refuse)
    assert uow.audit_log.writes == 2  # what the caller may not see is not shown, so not audited
    with pytest.raises(ActorNotFound):
        await handlers.read_actor("missing", MANAGER, uow_factory=uow)


async def test_the_audit_log_comes_in_pages_per_actor() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    other = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    for _ in range(5):
        await handlers.read_actor(actor.id, MANAGER, uow_factory=uow)
    await handlers.read_actor(other.id, MANAGER, uow_factory=uow)
    first = await handlers.audit_of(actor.id, OFFICER, uow_factory=uow, page=PageRequest(3))
    assert first.next_cursor is not None
    rest = await handlers.audit_of(
        actor.id, OFFICER, uow_factory=uow, page=PageRequest(3, decode_cursor(first.next_cursor))
    )
    assert len(first.items) == 3 and len(rest.items) == 2 and rest.next_cursor is None
    assert {e.id for e in first.items + rest.items} == {
        e.id for e in uow.audit_log.rows.values() if e.actor_id == actor.id
    }


async def test_erasure_raises_actor_erased_once_and_waits_for_the_other_services() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    erasure = await handlers.erase_actor(EraseActor(actor.id, "subject-dpo"), OFFICER, uow_factory=uow)
    assert set(erasure.finished) == {"actors"} and not erasure.complete and erasure.requested_by == "subject-dpo"
    [erased] = uow.committed(ActorErased)
    assert erased.payload == {"actor_id": actor.id, "revision": 2} and erased.initiated_by == "subject-dpo"
    stored = await handlers.actor_by_id(actor.id, OFFICER, uow_factory=uow)
    assert REGISTRATION.email not in repr(stored) and REGISTRATION.name not in repr(stored)

    again = await handlers.erase_actor(EraseActor(actor.id, "subject-dpo"), OFFICER, uow_factory=uow)
    assert again == erasure and len(uow.committed(ActorErased)) == 1  # idempotent
    assert [e.action for e in uow.audit_log.rows.values()] == ["erasure", "erasure"]  # each request audited
    with pytest.raises(ActorIsErased):
        await handlers.update_actor(UpdateActor(actor.id, {"language": "en"}), MANAGER, uow_factory=uow)

    at = datetime(2026, 11, 26, 12, tzinfo=UTC)
    for service in ("conferences", "conferences", "mallory", "notifications"):
        event = ActorErasureConfirmed(actor_id=actor.id, service=service, erased_at=at)
        await handlers.confirm_erasure(received(event, "actors"), uow_factory=uow)
    done = await handlers.erasure_of(actor.id, OFFICER, uow_factory=uow)
    assert done.complete and set(done.finished) == {"actors", "conferences", "notifications"}
    assert done.finished["conferences"] == at
    late = ActorErasureConfirmed(actor_id=actor.id, service="conferences", erased_at=datetime.now(UTC))
    await handlers.confirm_erasure(received(late, "actors"), uow_factory=uow)
    assert (await handlers.erasure_of(actor.id, OFFICER, uow_factory=uow)).finished["conferences"] == at


async def test_a_confirmation_for_an_actor_never_erased_changes_nothing_and_status_needs_an_erasure() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    event = ActorErasureConfirmed(actor_id=actor.id, service="conferences", erased_at=datetime.now(UTC))
    await handlers.confirm_erasure(received(event, "actors"), uow_factory=uow)
    assert uow.erasure_records.rows == {}
    with pytest.raises(handlers.NotErased):
        await handlers.erasure_of(actor.id, OFFICER, uow_factory=uow)
    with pytest.raises(ActorNotFound):
        await handlers.erase_actor(EraseActor("missing", "subject-dpo"), OFFICER, uow_factory=uow)


async def test_the_export_holds_the_entry_its_consent_history_and_its_audit_including_itself() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    await handlers.read_actor(actor.id, MANAGER, uow_factory=uow)
    export = await handlers.export_actor(actor.id, OFFICER, uow_factory=uow)
    assert export.actor == actor and export.erasure is None
    assert [(e.action, e.by) for e in export.audit] == [("read", "subject-manager"), ("export", "subject-dpo")]


async def test_erasure_and_its_confirmation_log_ids_only() -> None:
    uow = FakeActorsUnitOfWork()
    actor = await handlers.register_actor(REGISTRATION, MANAGER, uow_factory=uow)
    confirmed = ActorErasureConfirmed(actor_id=actor.id, service="notifications", erased_at=datetime.now(UTC))
    with capture_logs() as logs:
        await handlers.erase_actor(EraseActor(actor.id, "subject-dpo"), OFFICER, uow_factory=uow)
        await handlers.confirm_erasure(received(confirmed, "actors"), uow_factory=uow)
    assert [line["event"] for line in logs] == ["actor_erased", "erasure_confirmed"]
    assert all(line["actor_id"] == actor.id for line in logs)
    assert REGISTRATION.name not in repr(logs) and REGISTRATION.email not in repr(logs)
