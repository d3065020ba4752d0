"""An erased actor in the other services' copies: until they erase their copy themselves, the
shared copy rule treats ``ActorErased`` at least as a deactivation, so the actor is never invited
or mailed again, and nothing older brings it back."""

from __future__ import annotations

from conferences.domain import RosterEntry
from notifications.domain import Contact
from quartier_shared.actor_copies import copy_after
from quartier_shared.events import ActorErased, ActorEvent, ActorUpdated, ContactChanged, event_types_of
from tests.helpers import actor_registered


def test_the_consumers_of_actor_events_receive_actor_erased() -> None:
    assert ActorErased in event_types_of(ActorEvent)


def test_an_erased_actor_is_neither_invitable_nor_reachable_and_stays_so() -> None:
    registered = actor_registered("IV", revision=3)
    changed = ContactChanged(
        actor_id=registered.actor_id,
        revision=3,
        name="Testakteur",
        email="akteur@example.org",
        language="de",
        consent_to_notifications=True,
    )
    entry = copy_after(RosterEntry, registered, None)
    contact = copy_after(Contact, changed, None)
    assert entry is not None and entry.invitable and contact is not None and contact.reachable

    erased = ActorErased(actor_id=registered.actor_id, revision=4)
    gone_entry, gone_contact = RosterEntry.after(erased, entry), Contact.after(erased, contact)
    assert gone_entry is not None and not gone_entry.invitable and gone_entry.revision == 4
    assert gone_contact is not None and not gone_contact.reachable

    older = ActorUpdated.model_validate({**registered.model_dump(), "revision": 3})
    newer_contact = changed.model_copy(update={"revision": 9})  # erased: not even a higher revision
    assert RosterEntry.after(older, gone_entry) is None and Contact.after(newer_contact, gone_contact) is None
    assert RosterEntry.after(erased, None) is None  # never seen: nothing to invite
