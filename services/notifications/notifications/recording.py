"""Recording the outcomes of mails: logged the moment the SMTP server answers, folded into the
deliveries once the claim's mails are done. One recorder per notifications instance.

The crash window it keeps: a mail the SMTP server accepted but whose outcome is not logged yet is
sent once more after a ``kill -9`` (another claim takes its delivery over once the lease runs out;
same Message-ID). The recorder bounds how many such mails an instance has at any moment:
- A mail is sent in one of ``senders`` slots (``SMTP_CONNECTIONS``: one per SMTP connection), and
  the slot is held until the mail's outcome is logged. So a sender starts its next mail only once
  the previous one is logged, and at most ``senders`` mails are accepted-but-unlogged per
  instance, whatever the claims' size and however many are in flight (they only reserve).
- ``record`` queues an outcome and returns once it is logged: one writer task inserts everything
  queued as one ``outcome_log`` document, then at once takes what arrived meanwhile (group commit:
  no fixed window). An insert is the cheapest durable write there is, and needs no transaction;
  the senders wait for it and for nothing else.
- A fold moves logged outcomes into the deliveries, in one transaction for many writes: each
  outcome finished under its own claim's token (only while that claim still holds the delivery: a
  lease that ran out may have passed it to another claim), its InvitationSent or InvitationFailed
  into the outbox with the context of its own event and the time the server answered, and the log
  documents removed. Only an outcome that ends the delivery raises an event: a deferred delivery
  (the server said "not now") is given back with its next attempt and raises nothing yet, a
  cancelled one nothing at all. A claim folds once all its mails are done (``sending``), so one
  transaction carries a claim's outcomes (and any other's logged by then), and when a handler
  returns, its deliveries show their outcomes and its events are in the outbox.
- A logged outcome is as good as a folded one: before a claim takes deliveries over
  (``sending``, ``deferred_sending``), the logged outcomes of those deliveries are folded first,
  whoever logged them (``fold_for``), so a mail whose outcome was logged is never sent again. What
  an instance that died left in the log, the others fold after ``takeover_seconds`` (``run``).
- While MongoDB is away the writer waits and retries (once the SMTP server has taken a mail,
  sending it again is no way to recover), and the senders keep waiting with their slots: nothing
  new goes out until the outcomes before it are safe. Any other error fails that write's
  ``record`` calls (each caller decides: its mail is sent again once its lease runs out); the
  writer goes on with the next batch. Folds retry while MongoDB is away; one that fails otherwise
  leaves the log as it was, for the next fold (a claim's caller gets the error, a sweep logs it).
- An outcome once queued is logged even if the one waiting for it is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby

from quartier_shared.events import EventContext
from quartier_shared.logging import get_logger, redact
from quartier_shared.metrics import MAILS
from quartier_shared.mongo import is_unavailable
from quartier_shared.retry import Retry

from .domain import (
    CANCELLATION,
    CONFIRMATION,
    INVITATION,
    NOTICE,
    REMINDER,
    UPDATE,
    DeliveryStatus,
    LoggedOutcome,
    Outcome,
    OutcomeLogEntry,
)
from .repository import OutcomeLogRepository
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)
# Once the SMTP server has taken a mail, only recording its outcome is left: wait for MongoDB.
_until_recorded = Retry(base=0.2, cap=5.0, transient=is_unavailable)
FOLD_LIMIT = 500  # log documents per fold
TAKEOVER_SECONDS = 10.0  # after this, any instance folds what another logged
# The context of a fold's transaction: each event it raises carries its own trigger's.
_FOLDING = EventContext("notifications", "outcome-fold")

ReadLog = Callable[[OutcomeLogRepository], Awaitable[list[OutcomeLogEntry]]]


@dataclass
class _Queued:
    outcome: LoggedOutcome
    logged: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class OutcomeRecorder:
    """The log of outcomes, the sender slots that bound what a crash may send twice, and the folds."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        *,
        senders: int,
        now: Callable[[], datetime],
        owner: str,
        takeover_seconds: float = TAKEOVER_SECONDS,
    ) -> None:
        self.uow_factory = uow_factory
        self.now = now
        self.owner = owner
        self.senders = senders
        self.takeover_seconds = takeover_seconds
        self._slots = asyncio.Semaphore(senders)
        self._queue: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None
        self._folding = asyncio.Lock()  # one fold at a time per instance: they would conflict
        self.writes = 0  # log documents written, for tests and the benchmark
        self.folds = 0  # fold transactions committed

    @property
    def queued(self) -> int:
        """Outcomes waiting for the next write (the one in flight not counted)."""
        return len(self._queue)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One sender: hold it while sending a mail and logging its outcome (see the module)."""
        async with self._slots:
            yield

    async def record(self, outcome: Outcome, token: str, context: EventContext) -> None:
        """Queue ``outcome`` of claim ``token`` (``context``: of the event its delivery answers)
        and wait until it is logged."""
        queued = _Queued(LoggedOutcome.of(outcome, token, context, self.now()))
        # Its error is taken even when nobody waits any more (no "exception never retrieved").
        queued.logged.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(queued)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="outcome-recorder")
        # Shielded: a caller cancelled meanwhile leaves its outcome queued, and it is logged.
        await asyncio.shield(queued.logged)

    async def _write_all(self) -> None:
        """Write what is queued, then what arrived meanwhile, until nothing is left."""
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await _until_recorded.run(
                    partial(self._write, batch), event="outcomes_not_logged_yet", count=len(batch)
                )
            except Exception as exc:
                for q in batch:
                    _settle(q.logged, exc=exc)
                continue
            except BaseException:  # cancelled (shutting down): nobody is left to write for them
                for q in [*batch, *self._queue]:
                    q.logged.cancel()
                raise
            for q in batch:
                _settle(q.logged)

    async def _write(self, batch: list[_Queued]) -> None:
        entry = OutcomeLogEntry(uuid.uuid4().hex, self.owner, self.now(), tuple(q.outcome for q in batch))
        await self.uow_factory(batch[0].outcome.context).without_transaction().outcomes.add(entry)
        self.writes += 1

    async def run(self) -> None:
        """A background worker: every ``takeover_seconds``, fold what other instances left."""
        while True:
            await asyncio.sleep(self.takeover_seconds)
            await self._logging_errors(self.sweep())

    async def flush(self) -> None:
        """Log what is queued and fold this instance's log now (the unit tests, a stop)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        await self.fold()

    async def fold(self) -> int:
        """Fold this instance's log; returns how many outcomes were folded."""
        return await self._fold(lambda log: log.of_owner(self.owner, FOLD_LIMIT))

    async def fold_for(self, delivery_ids: Collection[str]) -> int:
        """Before a claim takes these deliveries: fold the log documents holding an outcome of
        any of them, whoever logged them."""
        wanted = set(delivery_ids)

        async def holding_them(log: OutcomeLogRepository) -> list[OutcomeLogEntry]:
            return [e for e in await log.oldest(FOLD_LIMIT) if any(o.delivery_id in wanted for o in e.outcomes)]

        return await self._fold(holding_them) if wanted else 0

    async def fold_everything(self) -> int:
        """Fold every instance's log now: before claiming whatever is due (``deferred_sending``)."""
        return await self._fold(lambda log: log.oldest(FOLD_LIMIT))

    async def sweep(self) -> int:
        """Fold what any instance logged more than ``takeover_seconds`` ago (it died, or its folds
        fail)."""
        before = self.now() - timedelta(seconds=self.takeover_seconds)
        return await self._fold(lambda log: log.oldest(FOLD_LIMIT, before=before))

    async def _logging_errors(self, fold: Awaitable[int]) -> None:
        try:
            await fold
        except Exception as exc:  # left in the log: the next fold, or another instance's sweep, takes it
            log.error("outcomes_not_folded", error=type(exc).__name__)

    async def _fold(self, read: ReadLog) -> int:
        """Fold what ``read`` finds, a transaction per ``FOLD_LIMIT`` log documents."""
        folded = 0
        async with self._folding:
            while True:
                entries, outcomes = await _until_recorded.run(
                    partial(self._fold_once, read), event="outcomes_not_folded_yet"
                )
                folded += outcomes
                if entries < FOLD_LIMIT:
                    return folded

    async def _fold_once(self, read: ReadLog) -> tuple[int, int]:
        """One transaction; returns how many log documents and outcomes it folded."""
        now = self.now()
        async with self.uow_factory(_FOLDING) as uow:
            entries = await read(uow.outcomes)
            if not entries:
                await uow.commit()  # nothing written: a commit ends it as cheaply as an abort
                return 0, 0
            logged = [o for e in entries for o in e.outcomes]
            stored = await uow.deliveries.get_many({o.delivery_id for o in logged})
            # A delivery gone meanwhile (an erasure) has nothing left to record.
            found = [(o, o.applied_to(stored[o.delivery_id])) for o in logged if o.delivery_id in stored]
            held: set[tuple[str, str]] = set()
            for token, group in groupby(sorted(found, key=lambda f: f[0].token), key=lambda f: f[0].token):
                finished = await uow.deliveries.finish([outcome for _, outcome in group], token, now)
                held |= {(token, i) for i in finished}
            for o, outcome in found:
                d = outcome.delivery
                # A cancelled invitation raises nothing: the conferences service cancelled it.
                # A deferred one neither: it has not ended.
                ends = o.status.final and o.status is not DeliveryStatus.CANCELLED
                if (o.token, d.id) in held and d.raises_events and ends:
                    uow.record(d.outcome(o.status, o.reason, o.at), d.outcome_event_id(o.status), o.context)
            await uow.outcomes.remove([e.id for e in entries])
            await uow.commit()
        self.folds += 1
        for o, outcome in found:
            if (o.token, outcome.delivery.id) in held:
                _count_and_log(outcome, o.context)
        return len(entries), len(logged)


def _settle(future: asyncio.Future[None], *, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(None)


# The event each kind of delivery answers, for the log.
_TRIGGERS = {
    CONFIRMATION: "InvitationAnswered",
    UPDATE: "InvitationUpdated",
    CANCELLATION: "InvitationCancelled",
    REMINDER: "InvitationReminded",
    NOTICE: "ContactChanged",
}


def _count_and_log(outcome: Outcome, trigger: EventContext) -> None:
    d = outcome.delivery
    MAILS.labels(outcome.status.value).inc()
    # A batch mixes triggers: each line names its own (the event it answers). Ids only: no
    # address, no name, no link.
    ids: dict[str, object] = {
        "correlation_id": trigger.correlation_id,
        "event_id": trigger.causation_id,
        "event_type": _TRIGGERS.get(d.kind, "InvitationIssued"),
        "invitation_id": d.invitation_id,
        "conference_id": d.conference_id,
        "sequence": d.conference.sequence,
    }
    if d.kind == INVITATION:
        ids["resend"] = d.resend
    if outcome.status is DeliveryStatus.SENT:
        log.info(f"{d.kind}_sent", **ids)
    elif outcome.status is DeliveryStatus.CANCELLED:
        log.info(f"{d.kind}_cancelled", **ids)
    elif outcome.status is DeliveryStatus.DEFERRED:
        retry_at = outcome.retry_at.isoformat() if outcome.retry_at else None
        log.info(f"{d.kind}_deferred", reason=redact(outcome.reason or ""), retry_at=retry_at, **ids)
    else:
        log.warning(f"{d.kind}_failed", reason=redact(outcome.reason or ""), **ids)
