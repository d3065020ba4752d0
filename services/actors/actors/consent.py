"""Consent to notifications as a record that can be shown (GDPR Art. 7(1)): given or withdrawn,
when, by whom, on what legal basis and for which wording of the consent text.

The contract:
- An actor keeps its records oldest first (``Actor.consent_history``); the last one is the
  current state, and ``Actor.consent_to_notifications`` (what the events and the other services
  read) is always ``given`` of it.
- ``by`` is the token subject of whoever recorded it (an opaque id, never a name), or
  ``PERSON_VIA_LINK`` when the person withdrew it through the unsubscribe link of a mail.
- The history is bounded (``HISTORY_LIMIT``): past it, the oldest records go, the current one
  never does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Basis = Literal["consent", "public_task"]  # Art. 6(1)(a) or (e) GDPR

HISTORY_LIMIT = 100
PERSON_VIA_LINK = "the person via link"
EMAIL_CHANGED = "e-mail changed"
ERASED = "erased"


@dataclass(frozen=True)
class ConsentStatement:
    """What a request says about consent; who recorded it and when are added by the domain."""

    given: bool
    basis: Basis
    wording_version: str

    def same_as(self, record: ConsentRecord | None) -> bool:
        return record is not None and (record.given, record.basis, record.wording_version) == (
            self.given,
            self.basis,
            self.wording_version,
        )


@dataclass(frozen=True)
class ConsentRecord:
    given: bool
    basis: Basis
    wording_version: str
    by: str | None  # the token subject; None when nobody signed in (never so far)
    at: datetime = field(default_factory=lambda: now_to_the_millisecond())
    reason: str | None = None  # why the service recorded it on its own (``EMAIL_CHANGED``, ``ERASED``)

    @property
    def given_by_staff(self) -> bool:
        """Given, and recorded by staff (a token subject) on the person's behalf, not by the
        person via link: the person is owed a notice (GDPR Art. 14)."""
        return self.given and self.by is not None and self.by != PERSON_VIA_LINK

    @classmethod
    def of(cls, statement: ConsentStatement, by: str | None, reason: str | None = None) -> ConsentRecord:
        return cls(statement.given, statement.basis, statement.wording_version, by, reason=reason)

    def withdrawn(self, by: str | None, reason: str) -> ConsentRecord:
        """Not given any more, on the same basis and wording as this one."""
        return ConsentRecord(False, self.basis, self.wording_version, by, reason=reason)


def now_to_the_millisecond() -> datetime:
    """Now, to the millisecond: what MongoDB stores, so a record reads back as it was shown."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def appended(history: tuple[ConsentRecord, ...], record: ConsentRecord) -> tuple[ConsentRecord, ...]:
    return (*history, record)[-HISTORY_LIMIT:]
