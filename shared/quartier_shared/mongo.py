"""MongoDB access: the client, and the unit of work that stores a change with its events.

A unit of work is one multi-document transaction: the aggregate's documents and the outbox
entries of the events the change caused commit together or not at all.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from pydantic import TypeAdapter
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure

from .events import Envelope, Event, EventContext, Tombstone
from .outbox import Outbox

Document = dict[str, Any]  # a MongoDB document, as PyMongo reads and writes it
T = TypeVar("T")


def make_client(uri: str, timeout_ms: int = 5_000) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        # A server that stops answering mid-request must surface as "unavailable", not hang.
        socketTimeoutMS=timeout_ms * 3,
    )


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached, as opposed to refusing a request."""
    if isinstance(exc, ConnectionFailure):
        return True
    return isinstance(exc, OperationFailure) and exc.has_error_label("TransientTransactionError")


class UnitOfWork(Protocol):
    """What handlers need of a unit of work. Each service's ``unit_of_work.py`` extends it with its
    repositories; the Mongo implementation below is the real one, unit tests use fakes."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def record(self, event: Event, event_id: str | None = None, context: EventContext | None = None) -> Envelope: ...
    def tombstone(self, tombstone: Tombstone) -> None: ...
    async def commit(self) -> None: ...
    def for_reading(self) -> Self: ...


class DocumentMapper(Generic[T]):
    """Documents from a domain dataclass and back, derived from its one declaration (pydantic
    converts tuples, enums, value objects and dates); its ``id`` (or ``id_field``) is stored as
    ``_id``."""

    def __init__(self, cls: type[T], id_field: str = "id") -> None:
        self._adapter: TypeAdapter[T] = TypeAdapter(cls)
        self._id_field = id_field

    def to_document(self, obj: T) -> Document:
        doc: Document = self._adapter.dump_python(obj)
        doc["_id"] = doc.pop(self._id_field)
        return doc

    def from_document(self, doc: Document) -> T:
        fields = {k: v for k, v in doc.items() if k != "_id"}
        return self._adapter.validate_python({self._id_field: doc["_id"], **fields})


class KeyedDocuments(Generic[T]):
    """One collection holding one document per key (``_id``), read and replaced whole, in
    ``session``'s transaction: the shape of the small repositories (a district's team, an
    actor's erasure record). Subclasses name the collection and the mapper."""

    def __init__(
        self, db: AsyncDatabase[Document], name: str, mapper: DocumentMapper[T], session: AsyncClientSession
    ) -> None:
        self.collection = db[name]
        self.mapper = mapper
        self.session = session

    async def get(self, key: str) -> T | None:
        doc = await self.collection.find_one({"_id": key}, session=self.session)
        return self.mapper.from_document(doc) if doc else None

    async def save(self, obj: T) -> None:
        doc = self.mapper.to_document(obj)
        await self.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=self.session)


class MongoUnitOfWork:
    """``async with uow: ...; uow.record(event); await uow.commit()``.

    Leaving the block without ``commit()`` aborts the transaction. Services subclass it to bind
    their repositories to ``self.session`` in ``bind``.
    """

    def __init__(
        self, client: AsyncMongoClient[Document], db: AsyncDatabase[Document], outbox: Outbox, context: EventContext
    ) -> None:
        self.client = client
        self.db = db
        self.outbox = outbox
        self.context = context
        self.events: list[Envelope] = []
        self.tombstones: list[Tombstone] = []
        self._session: AsyncClientSession | None = None
        self._reading = False

    @property
    def session(self) -> AsyncClientSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside 'async with'")
        return self._session

    def bind(self) -> None:
        """Create the repositories on ``self.session``."""

    def for_reading(self) -> Self:
        """For queries: a session without a transaction, so a long read does not hold up writers
        (on the embedded database it would); it cannot commit."""
        self._reading = True
        return self

    async def __aenter__(self) -> Self:
        self._session = self.client.start_session()
        if not self._reading:
            await self._session.start_transaction()
        self.events = []
        self.tombstones = []
        self.bind()
        return self

    def record(self, event: Event, event_id: str | None = None, context: EventContext | None = None) -> Envelope:
        """Store ``event`` with this change; ``context`` when one batch answers several triggers."""
        envelope = (context or self.context).wrap(event, event_id)
        self.events.append(envelope)
        return envelope

    def tombstone(self, tombstone: Tombstone) -> None:
        """Publish ``tombstone`` with this change, after its events."""
        self.tombstones.append(tombstone)

    async def commit(self) -> None:
        if self._reading:
            raise RuntimeError("a unit of work for reading cannot commit")
        session = self.session
        if self.events or self.tombstones:
            await self.outbox.store(self.events, session, self.tombstones)
        await session.commit_transaction()
        if self.events or self.tombstones:
            self.outbox.wake()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if session.in_transaction:
                await session.abort_transaction()
        finally:
            await session.end_session()
