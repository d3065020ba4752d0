"""Recording the outcomes of mails by group commit: one recorder per notifications instance.

The crash window it keeps: a mail the SMTP server accepted but whose outcome is not recorded yet is
sent once more after a ``kill -9`` (another claim takes its delivery over once the lease runs out;
same Message-ID). The recorder bounds how many such mails an instance has at any moment:
- A mail is sent in one of ``senders`` slots (``SMTP_CONNECTIONS``: one per SMTP connection), and
  the slot is held until the mail's outcome is durably recorded. So a sender starts its next mail
  only once the previous one is recorded, and at most ``senders`` mails are accepted-but-unrecorded
  per instance, whatever the claims' size and however many are in flight (they only reserve).
- ``record`` queues an outcome and returns once it is committed. One writer task writes everything
  queued in one transaction, then at once takes what arrived meanwhile: no fixed window, the batch
  is whatever came in while the previous write was in flight. Outcomes of different claims and of
  different events share a transaction: each is finished under its own claim's token (only while
  that claim still holds the delivery: a lease that ran out may have passed it to another claim),
  and its InvitationSent or InvitationFailed goes into the outbox with the context of its own event.
  Only an outcome that ends the delivery raises one: a deferred delivery (the server said "not
  now") is given back with its next attempt and raises nothing yet, a cancelled one nothing at all.
- While MongoDB is away the writer waits and retries (once the SMTP server has taken a mail,
  sending it again is no way to recover), and the senders keep waiting with their slots: nothing
  new goes out until the outcomes before it are safe. Any other error fails that batch's
  ``record`` calls (each caller decides: its mail is sent again once its lease runs out); the
  writer goes on with the next batch.
- An outcome once queued is written even if the one waiting for it is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import groupby

from quartier_shared.events import EventContext
from quartier_shared.logging import get_logger, redact
from quartier_shared.metrics import MAILS
from quartier_shared.mongo import is_unavailable
from quartier_shared.retry import Retry

from .domain import CANCELLATION, CONFIRMATION, INVITATION, NOTICE, REMINDER, UPDATE, DeliveryStatus, Outcome
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)
# Once the SMTP server has taken a mail, only recording its outcome is left: wait for MongoDB.
_until_recorded = Retry(base=0.2, cap=5.0, transient=is_unavailable)


@dataclass
class _Queued:
    outcome: Outcome
    token: str  # of the claim that sent it
    context: EventContext  # of the event the delivery answers
    recorded: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class OutcomeRecorder:
    """Group commit of outcomes, and the sender slots that bound what a crash may send twice."""

    def __init__(self, uow_factory: UnitOfWorkFactory, *, senders: int, now: Callable[[], datetime]) -> None:
        self.uow_factory = uow_factory
        self.now = now
        self.senders = senders
        self._slots = asyncio.Semaphore(senders)
        self._queue: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # transactions written, for tests and the benchmark

    @property
    def queued(self) -> int:
        """Outcomes waiting for the next write (the one in flight not counted)."""
        return len(self._queue)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One sender: hold it while sending a mail and recording its outcome (see the module)."""
        async with self._slots:
            yield

    async def record(self, outcome: Outcome, token: str, context: EventContext) -> bool:
        """Queue ``outcome`` of claim ``token`` and wait until it is committed; returns whether the
        claim still held the delivery (if not, another claim records it)."""
        queued = _Queued(outcome, token, context)
        # Its error is taken even when nobody waits any more (no "exception never retrieved").
        queued.recorded.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(queued)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="outcome-recorder")
        # Shielded: a caller cancelled meanwhile leaves its outcome queued, and it is written.
        return await asyncio.shield(queued.recorded)

    async def _write_all(self) -> None:
        """Write what is queued, then what arrived meanwhile, until nothing is left."""
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                held = await _until_recorded.run(
                    partial(self._write, batch), event="outcomes_not_recorded_yet", count=len(batch)
                )
            except Exception as exc:
                for q in batch:
                    _settle(q.recorded, exc=exc)
                continue
            except BaseException:  # cancelled (shutting down): nobody is left to write for them
                for q in [*batch, *self._queue]:
                    q.recorded.cancel()
                raise
            for q in batch:
                _settle(q.recorded, result=(q.token, q.outcome.delivery.id) in held)

    async def _write(self, batch: list[_Queued]) -> set[tuple[str, str]]:
        """One transaction: every outcome, each under its claim's token, with its event; returns the
        (token, delivery id) of those the claim still held."""
        now = self.now()
        by_token = sorted(batch, key=lambda q: q.token)
        held: set[tuple[str, str]] = set()
        async with self.uow_factory(batch[0].context) as uow:
            for token, group in groupby(by_token, key=lambda q: q.token):
                finished = await uow.deliveries.finish([q.outcome for q in group], token, now)
                held |= {(token, i) for i in finished}
            for q in batch:
                o, d = q.outcome, q.outcome.delivery
                # A cancelled invitation raises nothing: the conferences service cancelled it.
                # A deferred one neither: it has not ended.
                ends = o.status.final and o.status is not DeliveryStatus.CANCELLED
                if (q.token, d.id) in held and d.raises_events and ends:
                    uow.record(d.outcome(o.status, o.reason, now), d.outcome_event_id(o.status), q.context)
            await uow.commit()
        self.writes += 1
        for q in batch:
            if (q.token, q.outcome.delivery.id) in held:
                _count_and_log(q.outcome, q.context)
        return held


def _settle(future: asyncio.Future[bool], *, result: bool = False, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


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
