"""When a mail the SMTP server answered "not now" is tried again, and when trying ends.

A relay (Exchange, Microsoft 365, a data centre's) limits messages per minute and answers 421,
451 or 452 when pushed. Such an answer is no failure of the invitation: the delivery is
``DEFERRED``, given back by its claim (no connection and no lease held meanwhile) with the
server's answer as its reason and a time to try again. ``deferred_sending`` sends it from then on,
through the one claim path. The rules (``Deferral``):

- the pause doubles with each deferral of the delivery, from ``first_pause`` up to
  ``longest_pause``, each drawn between half of it and all of it, so mails refused together do not
  all come back at the same moment (``quartier_shared.retry.Retry.delay``);
- ``retry_for`` (SMTP_RETRY_FOR) after its first deferral the delivery fails with the server's last
  answer; its last attempt is made at that moment, not a pause after it;
- nothing is mailed once the conference has started: a next attempt that would come too late
  fails the delivery now (``TOO_LATE`` and the answer), rather than keep the invitation pending
  until the start. Confirmations and notices, which may go out after the start, are exempt
  (``Delivery.started``);
- ``paced``: the mail's slot of the relay's pace (``rate_limit``) is far off: it is deferred to
  that slot, which it keeps, instead of holding its claim until then;
- ``paused``: the server refused our credentials. Nobody's mail is at fault, so the delivery is
  deferred without counting towards ``retry_for`` (it goes out once the credentials are fixed),
  only the start of its conference ends it.

Pure: the time comes in, an ``Outcome`` goes out; the records are written with the claim's
other outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from quartier_shared.retry import Retry

from .domain import Delivery, DeliveryStatus, Outcome

TOO_LATE = "not sent: too late, the conference starts before the next attempt"
PACED = "not sent yet: waiting for its slot of SMTP_RATE_PER_MINUTE"


@dataclass(frozen=True)
class Deferral:
    retry_for: timedelta = timedelta(hours=24)
    first_pause: timedelta = timedelta(minutes=1)
    longest_pause: timedelta = timedelta(minutes=30)

    def after(self, d: Delivery, answer: str, now: datetime) -> Outcome:
        """The outcome of a temporary refusal (``answer``, addresses masked already) at ``now``."""
        since = d.deferred_since or now
        deadline = since + self.retry_for
        if now >= deadline:
            return Outcome(d, DeliveryStatus.FAILED, f"{answer} (tried for {_duration(self.retry_for)})")
        backoff = Retry(self.first_pause.total_seconds(), cap=self.longest_pause.total_seconds(), jitter=True)
        retry_at = min(now + timedelta(seconds=backoff.delay(d.deferrals + 1)), deadline)
        counted = replace(d, deferrals=d.deferrals + 1, deferred_since=since, paced_until=None)
        return self._unless_too_late(counted, answer, retry_at)

    def paused(self, d: Delivery, answer: str, retry_at: datetime) -> Outcome:
        """The outcome while the server refuses our credentials: tried again at ``retry_at``."""
        return self._unless_too_late(replace(d, paced_until=None), answer, retry_at)

    def paced(self, d: Delivery, slot: datetime) -> Outcome:
        """The outcome of a mail whose slot of the relay's pace is far off: deferred to ``slot``,
        which it keeps (``paced_until``); no refusal, so nothing is counted."""
        return self._unless_too_late(replace(d, paced_until=slot), d.reason or PACED, slot)

    @staticmethod
    def _unless_too_late(d: Delivery, answer: str, retry_at: datetime) -> Outcome:
        if d.started(retry_at):
            return Outcome(d, DeliveryStatus.FAILED, f"{TOO_LATE} ({answer})")
        return Outcome(d, DeliveryStatus.DEFERRED, answer, retry_at=retry_at)


def _duration(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{span.total_seconds():g} s"
