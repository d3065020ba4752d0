"""The notifications service on in-memory fakes (see tests/unit/fakes.py): its repositories and
unit of work, the mailer and the clock, so its handlers and sending workflow run without I/O; and
the events it consumes, as tests make them (its integration tests use them too).

``FakeDeliveryRepository`` keeps the rules of ``DeliveryRepository`` as the MongoDB one does; the
contract tests in tests/integration/test_delivery_store.py run against both.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from notifications import follow_ups, handlers
from notifications.domain import (
    CANCELLABLE,
    Contact,
    Delivery,
    DeliveryStatus,
    HandOver,
    KnownConference,
    Lease,
    LoggedOutcome,
    Outcome,
    OutcomeLogEntry,
)
from notifications.mail import OutgoingMail, Sender
from notifications.personal_links import PersonalLinks
from notifications.recording import OutcomeRecorder
from notifications.repository import (
    ContactRepository,
    DeliveryRepository,
    OutcomeLogRepository,
    latest_per_invitation,
)
from notifications.sending import Sending, SendingPolicy
from notifications.unit_of_work import Repositories
from quartier_shared.consumer import Received
from quartier_shared.events import (
    ActorErased,
    Answer,
    ConferenceDetails,
    ContactChanged,
    Envelope,
    Event,
    InvitationAnswered,
    InvitationCancelled,
    InvitationIssued,
    InvitationReminded,
    InvitationUpdated,
    Language,
    Reminder,
    Venue,
)
from quartier_shared.pagination import FIRST_PAGE, PageRequest
from tests.unit.fakes import FakeUnitOfWork, InMemory, delivered, paged, received

SERVICE = "notifications"
ContactChange = ContactChanged  # what update_contact takes
START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
# The personal-link key pair of these tests: notifications signs with the private key (as PEM text,
# one form LINK_SIGNING_KEY takes); tests verify with the public one, as the answer page does.
LINK_KEY = Ed25519PrivateKey.generate()
LINK_VERIFY_KEY = LINK_KEY.public_key()
LINK_SIGNING_PEM = LINK_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_BASE_URL = "https://quartier.essen.example.org"
LINKS = PersonalLinks.of(PUBLIC_BASE_URL, SecretStr(LINK_SIGNING_PEM))
SMTP_CONNECTIONS = 4  # the default of SMTP_CONNECTIONS
POLICY = SendingPolicy(
    sender=Sender(name="Integrationskonferenzen Essen", email="integration@essen.example.org"),
    mail_domain="essen.example.org",
    lease_seconds=120,
    claim_size=50,
    claims_in_flight=2,
    links=LINKS,
    privacy_url="https://www.essen.example.org/datenschutz",
)
# The footer of the unit tests' mails: a real unsubscribe link for actor "actor-1".
FOOTER = POLICY.footer("actor-1", "Borbeck", START)
CONFERENCE = ConferenceDetails(
    conference_id="conference-1",
    district="IV",
    district_name="Borbeck",
    title="Integrationskonferenz Borbeck",
    starts_at=datetime(2031, 3, 4, 16, 0, tzinfo=UTC),
    ends_at=datetime(2031, 3, 4, 19, 0, tzinfo=UTC),
    timezone="Europe/Berlin",
    venue=Venue(name="Kulturzentrum Borbeck", address="Musterstraße 1, 45355 Essen"),
    agenda=["Begrüßung", "Arbeitsgruppen"],
)


# --- events -----------------------------------------------------------------------------------------


def actor(
    email: str,
    *,
    revision: int = 1,
    consent: bool = True,
    active: bool = True,
    language: Language = "de",
    by_staff: bool = False,
) -> ContactChanged:
    """An actor's contact data; its id is derived from ``email``, so a test can name it twice.
    ``by_staff``: this change recorded consent given by staff (the person is owed a notice)."""
    return ContactChanged(
        actor_id=f"actor-{email}",
        revision=revision,
        name="Runder Tisch Frintrop",
        email=email,
        language=language,
        consent_to_notifications=consent,
        active=active,
        districts=["IV"],
        consent_recorded_by_staff=by_staff,
    )


def invitation(actor_id: str) -> InvitationIssued:
    return InvitationIssued(
        invitation_id=str(uuid.uuid4()),
        conference_id=CONFERENCE.conference_id,
        actor_id=actor_id,
        conference=CONFERENCE,
    )


def resent(issued: InvitationIssued, number: int) -> InvitationIssued:
    """The ``number``-th resend of an invitation, as the conferences service issues it."""
    return issued.model_copy(update={"resend": number})


def answer(
    issued: InvitationIssued, answer: Answer = "accepted", attendees: int = 2, **more: object
) -> InvitationAnswered:
    """An answer to ``issued``, as the answer page records it."""
    return InvitationAnswered.model_validate(
        {
            "invitation_id": issued.invitation_id,
            "conference_id": issued.conference_id,
            "actor_id": issued.actor_id,
            "answer": answer,
            "attendees": attendees,
            "answered_at": START,
            **more,
        }
    )


def updated(issued: InvitationIssued, confirm: bool = False, sequence: int = 1, **change: Any) -> InvitationUpdated:
    """The change of ``issued``'s conference to ``sequence`` (from the one before), as the
    conferences service issues it to the invitee."""
    before = issued.conference.model_copy(update={"sequence": sequence - 1})
    return InvitationUpdated(
        invitation_id=issued.invitation_id,
        conference_id=issued.conference_id,
        actor_id=issued.actor_id,
        conference=before.model_copy(update={**change, "sequence": sequence}),
        previous=before,
        confirm=confirm,
    )


def cancelled(issued: InvitationIssued, reason: str | None = "Der Saal ist nicht verfügbar") -> InvitationCancelled:
    return InvitationCancelled(
        invitation_id=issued.invitation_id,
        conference_id=issued.conference_id,
        actor_id=issued.actor_id,
        conference=issued.conference.model_copy(update={"sequence": issued.conference.sequence + 1}),
        reason=reason,
    )


def reminded(
    issued: InvitationIssued, reminder: Reminder = "please_answer", reminder_id: str = "P7D"
) -> InvitationReminded:
    return InvitationReminded(
        invitation_id=issued.invitation_id,
        conference_id=issued.conference_id,
        actor_id=issued.actor_id,
        conference=issued.conference,
        reminder=reminder,
        reminder_id=reminder_id,
    )


# --- storage --------------------------------------------------------------------------------------


class FakeContactRepository(InMemory[Contact]):
    async def get(self, actor_id: str) -> Contact | None:
        return self.rows.get(actor_id)

    async def get_many(self, actor_ids: Iterable[str]) -> dict[str, Contact]:
        return {i: self.rows[i] for i in actor_ids if i in self.rows}

    async def save(self, contact: Contact) -> None:
        self.rows[contact.id] = contact


@dataclass(frozen=True)
class StoredDelivery:
    """A delivery as the fake stores it: with the token of the claim holding it, as ``claim``, of
    the claim that handed it to the SMTP server, as ``handed``, and whether a cancellation reached it."""

    delivery: Delivery
    claim: str | None = None
    handed: str | None = None
    cancelled: bool = False


class FakeDeliveryRepository(InMemory[StoredDelivery]):
    def __init__(self) -> None:
        super().__init__()
        # What the fan-out was tuned for: the size of each claim of new deliveries, and how many
        # of them were open at once (stored, and their outcomes not recorded yet).
        self.new_claim_sizes: list[int] = []
        self.open_claims: set[str] = set()
        self.most_open_claims = 0

    async def add_claimed(self, deliveries: Sequence[Delivery], lease: Lease) -> list[Delivery]:
        self.new_claim_sizes.append(len(deliveries))
        self.open_claims.add(lease.token)
        self.most_open_claims = max(self.most_open_claims, len(self.open_claims))
        leased = [replace(d, status=DeliveryStatus.SENDING, lease_until=lease.until) for d in deliveries]
        return [d for d in leased if self._insert_new(d, lease.token, handed=lease.token)]

    async def add_waiting(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            self._insert_new(replace(d, status=DeliveryStatus.WAITING_FOR_CONTACT), None)

    def _insert_new(self, delivery: Delivery, claim: str | None, handed: str | None = None) -> bool:
        if delivery.id in self.rows:
            return False
        self.insert(delivery.id, StoredDelivery(delivery, claim, handed=handed))
        return True

    async def claim(self, ids: Sequence[str], lease: Lease, now: datetime) -> list[Delivery]:
        for i in ids:
            if i in self.rows and self.rows[i].delivery.claimable(now):
                leased = replace(self.rows[i].delivery, status=DeliveryStatus.SENDING, lease_until=lease.until)
                self.rows[i] = replace(self.rows[i], delivery=leased, claim=lease.token)
        return [self.rows[i].delivery for i in ids if i in self.rows and self.rows[i].claim == lease.token]

    async def release(self, ids: Sequence[str], token: str) -> None:
        for i in self._held(ids, token):
            released = replace(self.rows[i].delivery, status=DeliveryStatus.PENDING, lease_until=None)
            self.rows[i] = replace(self.rows[i], delivery=released, claim=None)

    async def finish(self, outcomes: Sequence[Outcome], token: str, now: datetime) -> set[str]:
        held = self._held([o.delivery.id for o in outcomes], token)
        self.open_claims.discard(token)
        for o in outcomes:
            if o.delivery.id in held:
                stored = self.rows[o.delivery.id]
                if o.status is DeliveryStatus.DEFERRED:  # given back, not handed over: refused
                    deferred = replace(
                        stored.delivery,
                        status=o.status,
                        reason=o.reason,
                        next_attempt_at=o.retry_at,
                        deferrals=o.delivery.deferrals,
                        deferred_since=o.delivery.deferred_since,
                        paced_until=o.delivery.paced_until,
                        trigger=o.delivery.trigger,
                        lease_until=None,
                    )
                    self.rows[o.delivery.id] = replace(stored, delivery=deferred, claim=None, handed=None)
                    continue
                self.rows[o.delivery.id] = replace(
                    stored, delivery=replace(stored.delivery, status=o.status, reason=o.reason)
                )
        return held

    async def renew(self, delivery_id: str, token: str, until: datetime) -> bool:
        if not self._held([delivery_id], token):
            return False
        stored = self.rows[delivery_id]
        self.rows[delivery_id] = replace(stored, delivery=replace(stored.delivery, lease_until=until))
        return True

    async def claim_due(self, now: datetime, lease: Lease, limit: int) -> list[Delivery]:
        def due(d: Delivery) -> bool:
            if d.status is DeliveryStatus.DEFERRED:
                return d.next_attempt_at is not None and d.next_attempt_at <= now
            return d.status is DeliveryStatus.SENDING and d.next_attempt_at is not None and d.claimable(now)

        found = sorted((d for d in self._by_id() if due(d)), key=lambda d: (d.next_attempt_at or now, d.id))
        return await self.claim([d.id for d in found[:limit]], lease, now)

    async def hand_over(self, ids: Sequence[str], token: str) -> HandOver:
        held = self._held(ids, token)
        for i in held:
            if not self.rows[i].cancelled:
                self.rows[i] = replace(self.rows[i], handed=token)
        return HandOver(
            send=[self.rows[i].delivery for i in ids if i in held and self.rows[i].handed is not None],
            cancelled={i for i in held if self.rows[i].handed is None},
        )

    async def refresh(self, invitation_ids: Sequence[str], conference: ConferenceDetails) -> None:
        for i, stored in self.rows.items():
            d = stored.delivery
            if (
                d.invitation_id in invitation_ids
                and d.kind == "invitation"
                and not d.status.final
                and stored.handed is None
                and d.conference.sequence < conference.sequence
            ):
                self.rows[i] = replace(stored, delivery=replace(d, conference=conference))

    async def cancel_unsent(self, invitation_ids: Sequence[str], reason: str, now: datetime) -> None:
        for i, stored in self.rows.items():
            d = stored.delivery
            if d.invitation_id not in invitation_ids or d.kind not in CANCELLABLE or d.status.final:
                continue
            if d.status is DeliveryStatus.SENDING:
                self.rows[i] = replace(stored, cancelled=True)
            else:
                cancelled = replace(d, status=DeliveryStatus.CANCELLED, reason=reason)
                self.rows[i] = replace(stored, delivery=cancelled, cancelled=True)

    async def add_cancelled(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if self._insert_new(replace(d, status=DeliveryStatus.CANCELLED), None):
                self.rows[d.id] = replace(self.rows[d.id], cancelled=True)

    async def of_invitations(self, invitation_ids: Iterable[str]) -> list[Delivery]:
        wanted = set(invitation_ids)
        return [d for d in self._by_id() if d.invitation_id in wanted]

    def _held(self, ids: Iterable[str], token: str) -> set[str]:
        return {
            i
            for i in ids
            if i in self.rows and self.rows[i].claim == token and self.status(i) is DeliveryStatus.SENDING
        }

    async def get_many(self, ids: Iterable[str]) -> dict[str, Delivery]:
        return {i: self.rows[i].delivery for i in ids if i in self.rows}

    async def latest_invitations(self, invitation_ids: Iterable[str]) -> dict[str, Delivery]:
        wanted = set(invitation_ids)
        return latest_per_invitation(d for d in self._by_id() if d.kind == "invitation" and d.invitation_id in wanted)

    async def waiting_for(self, actor_id: str) -> list[Delivery]:
        waiting = DeliveryStatus.WAITING_FOR_CONTACT
        return [d for d in self._by_id() if d.actor_id == actor_id and d.status is waiting]

    async def cancel_unsent_of_actor(self, actor_id: str, reason: str, now: datetime) -> list[Delivery]:
        found = [d for d in self._by_id() if d.actor_id == actor_id and not d.status.final]
        for d in found:
            cancelled = replace(d, status=DeliveryStatus.FAILED, reason=reason, lease_until=None)
            self.rows[d.id] = StoredDelivery(cancelled, None)
        return found

    async def of_actor(self, actor_id: str, limit: int) -> list[tuple[Delivery, datetime | None]]:
        found: list[tuple[Delivery, datetime | None]] = [(d, None) for d in self._by_id() if d.actor_id == actor_id]
        return found[:limit]

    async def for_conference(self, conference_id: str, page: PageRequest = FIRST_PAGE) -> list[Delivery]:
        return paged([d for d in self._by_id() if d.conference_id == conference_id], page, lambda d: (d.id, d.id))

    def _by_id(self) -> list[Delivery]:
        return [self.rows[i].delivery for i in sorted(self.rows)]

    def status(self, delivery_id: str) -> DeliveryStatus:
        return self.rows[delivery_id].delivery.status


class FakeConferenceRepository(InMemory[KnownConference]):
    async def get(self, conference_id: str) -> KnownConference | None:
        return self.rows.get(conference_id)

    async def save(self, conference: KnownConference) -> None:
        self.rows[conference.id] = conference


class FakeQuotaRepository(InMemory[int]):
    async def take(self, conference_id: str, window: datetime) -> int:
        key = f"{conference_id}:{window.isoformat()}"
        self.rows[key] = self.rows.get(key, 0) + 1
        return self.rows[key]


class FakeOutcomeLog(InMemory[OutcomeLogEntry]):
    async def add(self, entry: OutcomeLogEntry) -> None:
        self.insert(entry.id, entry)

    async def of_owner(self, owner: str, limit: int) -> list[OutcomeLogEntry]:
        return self._oldest([e for e in self.rows.values() if e.owner == owner], limit)

    async def oldest(self, limit: int, before: datetime | None = None) -> list[OutcomeLogEntry]:
        return self._oldest([e for e in self.rows.values() if before is None or e.created_at < before], limit)

    @staticmethod
    def _oldest(entries: list[OutcomeLogEntry], limit: int) -> list[OutcomeLogEntry]:
        return sorted(entries, key=lambda e: e.created_at)[:limit]

    async def remove(self, ids: Sequence[str]) -> None:
        for key in ids:
            self.rows.pop(key, None)

    def outcomes(self) -> list[LoggedOutcome]:
        """Logged and not folded yet."""
        return [o for e in self.rows.values() for o in e.outcomes]


class FakeNotificationsUnitOfWork(FakeUnitOfWork):
    contacts: ContactRepository
    deliveries: DeliveryRepository
    outcomes: OutcomeLogRepository

    def __init__(self) -> None:
        # The same repositories, typed as the fakes, for tests to look into.
        self.fake_contacts, self.fake_deliveries = FakeContactRepository(), FakeDeliveryRepository()
        self.fake_conferences, self.fake_quota = FakeConferenceRepository(), FakeQuotaRepository()
        self.fake_outcomes = FakeOutcomeLog()
        super().__init__(
            self.fake_contacts, self.fake_deliveries, self.fake_conferences, self.fake_quota, self.fake_outcomes
        )
        self.contacts, self.deliveries, self.outcomes = self.fake_contacts, self.fake_deliveries, self.fake_outcomes

    def without_transaction(self) -> Repositories:
        return Repositories(
            contacts=self.contacts,
            deliveries=self.deliveries,
            conferences=self.fake_conferences,
            quota=self.fake_quota,
            outcomes=self.fake_outcomes,
        )


# --- the outside world ------------------------------------------------------------------------------


class FakeMailer:
    """Takes every mail, except that each address may first answer with the failures given."""

    def __init__(self, failures: dict[str, list[Exception]] | None = None) -> None:
        self.sent: list[OutgoingMail] = []
        self.failures = failures or {}

    async def send(self, mail: OutgoingMail) -> None:
        await asyncio.sleep(0)  # a real send lets the other mails of its claim run meanwhile
        planned = self.failures.get(mail.recipient)
        if planned:
            raise planned.pop(0)
        self.sent.append(mail)

    def recipients(self) -> list[str]:
        return sorted(m.recipient for m in self.sent)


class FakeClock:
    """Time that passes only when the workflow waits: no test sleeps for real."""

    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def waited(self) -> timedelta:
        return self.current - START


# --- the service on fakes -------------------------------------------------------------------------


class Notifications:
    """The service's handlers on the fakes, wired as app.py wires them to MongoDB and SMTP."""

    def __init__(self, mailer: FakeMailer | None = None) -> None:
        self.uow = FakeNotificationsUnitOfWork()
        self.mailer = mailer or FakeMailer()
        self.clock = FakeClock()
        # As app.py: one recorder for the instance, a sender slot per SMTP connection.
        self.recorder = OutcomeRecorder(self.uow, senders=SMTP_CONNECTIONS, now=self.clock.now, owner="tests-1")

    async def on_actor(self, *events: ContactChange) -> list[Received[ContactChange]]:
        """Each event as the consumer hands it over; returns them as handled."""
        items: list[Received[ContactChange]] = [received(e, SERVICE) for e in events]
        for item in items:
            await handlers.update_contact(
                item,
                sending=self.sending(),
            )
        return items

    async def on_invitations(self, *events: InvitationIssued) -> None:
        """One consumer batch of these events."""
        await handlers.send_invitations(
            [received(e, SERVICE) for e in events],
            sending=self.sending(),
        )

    async def on_answers(self, *envelopes: Envelope) -> None:
        """One consumer batch of these InvitationAnswered envelopes (their event ids matter)."""
        await handlers.send_confirmations(
            [delivered(e, InvitationAnswered, SERVICE) for e in envelopes],
            sending=self.sending(),
        )

    async def on_updates(self, *events: InvitationUpdated) -> None:
        await follow_ups.send_updates(
            [received(e, SERVICE) for e in events],
            sending=self.sending(),
        )

    async def on_cancellations(self, *events: InvitationCancelled) -> None:
        await follow_ups.send_cancellations(
            [received(e, SERVICE) for e in events],
            sending=self.sending(),
        )

    async def on_reminders(self, *events: InvitationReminded) -> None:
        await follow_ups.send_reminders(
            [received(e, SERVICE) for e in events],
            sending=self.sending(),
        )

    def sending(self, policy: SendingPolicy = POLICY) -> Sending:
        """As app.py wires it, with this service's recorder (a test may replace it) and ``policy``."""
        return Sending(self.uow, self.mailer, self.recorder, policy, self.clock)

    def recorded(self) -> int:
        """Mails whose outcome is safe: folded into their delivery, or logged and not folded yet."""
        folded = sum(1 for d in self.uow.fake_deliveries.rows.values() if d.delivery.status.final)
        return folded + len(self.uow.fake_outcomes.outcomes())

    def delivery(self, delivery_id: str) -> Delivery:
        return self.uow.fake_deliveries.rows[delivery_id].delivery

    async def on_erased(self, *events: ActorErased) -> None:
        for event in events:
            await handlers.erase_contact(received(event, SERVICE), uow_factory=self.uow, clock=self.clock)

    def events(self, event_type: type[Event]) -> list[Envelope]:
        """The events of this type its units of work committed (what the outbox would relay)."""
        return self.uow.committed(event_type)

    def status(self, invitation: InvitationIssued) -> DeliveryStatus:
        return self.uow.fake_deliveries.status(Delivery.id_for(invitation.invitation_id, "invitation"))
