"""Copies of actors kept by other services from actor events (event-carried state transfer).

The conferences service keeps a roster entry per actor (from ``ActorSnapshot``), the
notifications service a contact (from ``ContactChanged``, the only event with the name and the
address): each its own frozen dataclass with the actor's id as ``id`` and the fields of the event
it needs. ``copy_after`` is the one rule for both: a copy only moves forward by the actor's
revision, so an older or repeated event changes nothing, whatever order the events arrive in.
``ActorErased`` is an ``ActorDeactivated``: an erased actor's copy is at least inactive for good.
A service that erases what it holds of the actor confirms it with ``erasure_confirmed``: an
``ActorErasureConfirmed`` whose event id is derived from the actor and the service, so confirming
again (a redelivered ``ActorErased``) is the same event to the actors service.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import TypeAdapter

from .events import ActorDeactivated, ActorErasureConfirmed, ActorSnapshot, ContactChanged

_CONFIRMATION_NAMESPACE = uuid.UUID("5b0e3c1d-6f2a-4e8b-9d47-2c81a6f0e913")


class ActorCopy(Protocol):
    @property
    def revision(self) -> int: ...


C = TypeVar("C", bound=ActorCopy)


# The events a copy is made from: full state (a snapshot, the contact) or deactivation.
CopiedEvent = ActorSnapshot | ContactChanged | ActorDeactivated


def copy_after(cls: type[C], event: CopiedEvent, current: C | None) -> C | None:
    """The copy once ``event`` is applied; None when the event changes nothing (it is older than
    the copy or repeated, or deactivates an actor this service never saw)."""
    if current is not None and current.revision >= event.revision:
        return None
    if isinstance(event, ActorDeactivated):
        if current is None:
            return None
        copy: C = dataclasses.replace(current, active=False, revision=event.revision)  # type: ignore[type-var]
        return copy
    # The event's fields the copy declares (pydantic converts lists to tuples); the rest is ignored.
    fresh: C = _adapter(cls).validate_python({**event.model_dump(), "id": event.actor_id})
    return fresh


@functools.cache
def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def erasure_confirmed(actor_id: str, service: str, at: datetime) -> tuple[ActorErasureConfirmed, str]:
    """``service``'s confirmation that it erased its copy of the actor, and the event id to record
    it with (the same for every confirmation of that actor by that service)."""
    event_id = str(uuid.uuid5(_CONFIRMATION_NAMESPACE, f"erasure-confirmed:{actor_id}:{service}"))
    return ActorErasureConfirmed(actor_id=actor_id, service=service, erased_at=at), event_id
