"""Deferred deliveries sent again when due: the loop each notifications instance runs.

A delivery the SMTP server answered "not now" is stored ``DEFERRED`` with ``next_attempt_at``
(``deferrals``). ``send_due()`` claims up to ``batch`` of those due by the worker's clock (and any
a dead instance left leased after taking them) and sends them through the one sending workflow
(``Sending.claimed``): the same hand-over, consent check, "too late" rule, relay pace and
outcome records as every mail, in the sender slots of the instance's one ``OutcomeRecorder``
(``recording``), so a crash resends at most one mail per SMTP connection here too. Of several
instances each delivery is claimed by one (``claim`` takes only what is claimable). The clock is
passed in (the instance's, which its recorder uses too), so tests drive time themselves.

Outcomes of a deferred invitation raise InvitationSent or InvitationFailed as the first attempt's
would, caused by the same event and with the same correlation id (``Delivery.trigger``, kept at
deferral), so the trail from the coordinator's request holds. Claims and reads, and a delivery
deferred before the trigger was kept, use a correlation id of their own (``deferred-…``).

Whether a refused mail was really not sent: a 4xx answer says so. A connection lost or timed out
after the mail's data was sent is the one ambiguous case: the server may have taken it. It is
deferred like the others and sent again with the same Message-ID (as after a crash), and a
cancellation reaching it meanwhile stops it without a cancellation mail.

``run`` repeats ``send_due`` every ``poll_seconds``, and at once again while a batch came back full.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

from quartier_shared.events import EventContext
from quartier_shared.logging import get_logger
from quartier_shared.retry import Retry

from .domain import Lease
from .sending import Sending

log = get_logger(__name__)


class DeferredSending:
    def __init__(self, sending: Sending, *, service: str, batch: int = 100, poll_seconds: float = 15.0) -> None:
        self.sending = sending
        self.uow_factory, self.recorder = sending.uow_factory, sending.recorder
        self.policy, self.clock = sending.policy, sending.clock
        self.service = service
        self.batch = batch
        self.poll_seconds = poll_seconds

    async def send_due(self) -> int:
        """Claim and send one batch of what is due by the worker's clock; returns how many were
        claimed."""
        clock = self.clock
        context = EventContext(self.service, f"deferred-{uuid.uuid4().hex[:16]}")
        now = clock.now()
        lease = Lease.starting(now, self.policy.lease_seconds)
        # A logged outcome counts as recorded: folded first, so that nothing logged is sent again.
        await self.recorder.fold_everything()
        # In a transaction, as every claim (see ``sending.claim_and_send``).
        async with self.uow_factory(context) as uow:
            claimed = await uow.deliveries.claim_due(now, lease, self.batch)
            await uow.commit()
        if not claimed:
            return 0
        store = self.uow_factory(context).without_transaction()
        contacts = await store.contacts.get_many({d.actor_id for d in claimed})
        # A deferred delivery had its contact when it was first claimed, and an erasure fails the
        # deliveries it keeps; should one be missing all the same, it stays leased and is tried
        # again once the lease ran out, rather than given back to nobody.
        if len(contacts) < len({d.actor_id for d in claimed}):
            log.warning("deferred_delivery_without_contact")
        known = [d for d in claimed if d.actor_id in contacts]
        log.info("deferred_sending", count=len(known))
        # Each outcome caused by the event its delivery answers (kept when it was deferred).
        contexts = {d.id: replace(d.trigger, producer=self.service) if d.trigger else context for d in known}
        await self.sending.claimed(known, contacts, lease, contexts)
        return len(claimed)

    async def run(self) -> None:
        retry = Retry(base=0.5, cap=30.0)  # MongoDB away: nothing is lost, the deliveries stay stored
        while True:
            claimed = await retry.run(self.send_due, event="deferred_sending_retrying")
            if claimed < self.batch:
                await asyncio.sleep(self.poll_seconds)
