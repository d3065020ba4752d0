"""In-memory stand-ins for the adapters, so the service layer is tested without I/O.

``FakeUnitOfWork`` behaves as the MongoDB one does where handlers can tell: what a block changes
in its repositories, and the events it records, count only once it commits; leaving the block
without committing discards both. A block ``for_reading`` has no transaction: what it writes
(an audit entry) stays at once. Each service's tests subclass it with fake repositories, which
keep their objects in ``InMemory.rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from aiokafka.structs import ConsumerRecord

from quartier_shared.consumer import Received
from quartier_shared.events import Envelope, Event, EventContext, Tombstone
from quartier_shared.pagination import PageRequest
from tests.helpers import envelope_of

T = TypeVar("T")
E = TypeVar("E", bound=Event)


class DuplicateKey(Exception):
    """What the real repositories' unique ``_id`` raises."""


class InMemory(Generic[T]):
    """A fake repository's objects by id."""

    def __init__(self) -> None:
        self.rows: dict[str, T] = {}

    def insert(self, key: str, obj: T) -> None:
        if key in self.rows:
            raise DuplicateKey(key)
        self.rows[key] = obj


def paged(found: Iterable[T], page: PageRequest, position: Callable[[T], tuple[Any, str]]) -> list[T]:
    """What a repository reads for ``page``: in the order of ``position``, after the cursor's
    position, ``page.fetch`` of them (the keyset query of ``quartier_shared.pagination``)."""
    ordered = sorted(found, key=position)
    after = [x for x in ordered if page.after is None or position(x) > page.after]
    return after[: page.fetch]


class FakeUnitOfWork:
    """Also its own factory: ``uow(context)`` starts a unit of work on the same data, its events
    caused in ``context``. ``events`` are the committed ones, in order (what the outbox would relay)."""

    def __init__(self, *repositories: InMemory[Any]) -> None:
        self.repositories = repositories
        self.context = EventContext("tests", "test-correlation")
        self.events: list[Envelope] = []
        self.tombstones: list[Tombstone] = []  # committed, in order
        self.commits = 0
        self._pending: list[Envelope] = []
        self._pending_tombstones: list[Tombstone] = []
        self._before: list[dict[str, Any]] = []
        self._reading = False

    def __call__(self, context: EventContext) -> Self:
        self.context = context
        return self

    def for_reading(self) -> Self:
        self._reading = True
        return self

    async def __aenter__(self) -> Self:
        self._pending = []
        self._pending_tombstones = []
        self._before = [dict(r.rows) for r in self.repositories]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._reading:
            for repository, before in zip(self.repositories, self._before, strict=True):
                repository.rows = before  # a no-op after commit, which took the changes as the new state
        self._pending = []
        self._pending_tombstones = []
        self._reading = False

    def record(self, event: Event, event_id: str | None = None, context: EventContext | None = None) -> Envelope:
        envelope = (context or self.context).wrap(event, event_id)
        self._pending.append(envelope)
        return envelope

    def tombstone(self, tombstone: Tombstone) -> None:
        self._pending_tombstones.append(tombstone)

    async def commit(self) -> None:
        self.events += self._pending
        self.tombstones += self._pending_tombstones
        self._pending = []
        self._pending_tombstones = []
        self._before = [dict(r.rows) for r in self.repositories]
        self.commits += 1

    def committed(self, event_type: type[Event]) -> list[Envelope]:
        return [e for e in self.events if e.event_type == event_type.__name__]


def received(event: E, service: str) -> Received[E]:
    """``event`` as the consumer of ``service`` hands it to a handler."""
    return delivered(envelope_of(event), type(event), service)


def delivered(envelope: Envelope, event_type: type[E], service: str) -> Received[E]:
    """A recorded event (``envelope``) as the consumer of ``service`` hands it to a handler: what
    the handler causes has the same correlation id, and this event as its cause."""
    value = envelope.model_dump_json().encode()
    record = ConsumerRecord(
        event_type.topic, 0, 0, 0, 0, envelope.aggregate_id.encode(), value, None, 0, len(value), ()
    )
    context = EventContext(service, envelope.correlation_id, envelope.event_id, envelope.initiated_by)
    return Received(event_type.model_validate(envelope.payload), envelope, context, record)
