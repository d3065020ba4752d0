"""The audit log of personal data (GDPR Art. 5(2), accountability): every read of an actor's
contact data, every export and every erasure, with who (the token subject), when, what and which
actor; never the data itself.

The contract:
- One ``AuditEntry`` per actor and action; a request that shows many actors (a page of the
  list) writes its entries with one insert (``AuditLog.record``), so auditing costs one round
  trip per request, not one per actor.
- An entry is written before the answer leaves: a read whose entry cannot be stored fails.
- Entries are listed per actor, oldest first, in pages (``quartier_shared.pagination``), for the
  data-protection role only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from .consent import now_to_the_millisecond

Action = Literal["read", "list", "export", "erasure"]


@dataclass(frozen=True)
class AuditEntry:
    actor_id: str
    action: Action
    by: str | None  # the token subject; never a name
    at: datetime = field(default_factory=now_to_the_millisecond)
    id: str = field(default_factory=lambda: _time_ordered_id())


def _time_ordered_id() -> str:
    """Unique, and in the order made: entries of one millisecond (the precision of ``at``) are
    listed as they happened."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


def entries(actor_ids: Iterable[str], action: Action, by: str | None) -> list[AuditEntry]:
    """One entry per actor (each once), all at the same moment."""
    now = now_to_the_millisecond()
    return [AuditEntry(actor_id, action, by, now) for actor_id in dict.fromkeys(actor_ids)]
