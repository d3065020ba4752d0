"""Actors: registration, changes and deactivation, and the events they raise (pure domain)."""

from __future__ import annotations

import pytest

from actors.commands import RegisterActor
from actors.consent import ConsentStatement
from actors.domain import Actor
from quartier_shared.events import ActorDeactivated, ActorRegistered, ActorUpdated

REGISTRATION = RegisterActor(
    name="Kinder- und Familienbüro Steele",
    kind="public_agency",
    districts=["VII", "VII", "VIII"],
    email="kfb-steele@example.org",
    language="de",
    consent=ConsentStatement(True, "consent", "2026-11"),
    by="subject-manager",
)


def test_registering_raises_a_full_snapshot_with_each_district_once() -> None:
    actor, registered = Actor.register(REGISTRATION)
    assert actor.districts == ("VII", "VIII")  # duplicates dropped, order kept
    assert actor.revision == 1 and actor.active
    assert registered == ActorRegistered(
        actor_id=actor.id,
        revision=1,
        name=REGISTRATION.name,
        kind="public_agency",
        districts=["VII", "VIII"],
        email=REGISTRATION.email,
        language="de",
        consent_to_notifications=True,
        active=True,
        consent_recorded_by_staff=True,  # by a token subject: the person is owed a notice
    )


def test_an_update_bumps_the_revision_and_a_no_op_raises_nothing() -> None:
    actor, _ = Actor.register(REGISTRATION)
    updated, event = actor.update({"language": "en", "districts": ["I", "I"]})
    assert updated.revision == 2 and updated.language == "en" and updated.districts == ("I",)
    assert isinstance(event, ActorUpdated) and event.revision == 2 and event.districts == ["I"]
    assert updated.updated_at >= actor.updated_at and updated.created_at == actor.created_at
    same, nothing = updated.update({"language": "en"})
    assert same == updated and nothing is None


def test_deactivating_twice_raises_one_event() -> None:
    actor, _ = Actor.register(REGISTRATION)
    gone, event = actor.deactivate()
    assert not gone.active and event == ActorDeactivated(actor_id=actor.id, revision=2)
    assert gone.deactivate() == (gone, None)


def test_only_editable_fields_change() -> None:
    actor, _ = Actor.register(REGISTRATION)
    with pytest.raises(ValueError, match="not editable"):
        actor.update({"revision": 7})
