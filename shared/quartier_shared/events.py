"""Quartier's integration events: one library of schemas, one envelope.

Every event is a past-tense, immutable pydantic model. On the wire it travels as the JSON of an
``Envelope`` (event id, type, version, time, correlation and causation ids, producer, aggregate
id, payload); the same ids are copied into Kafka headers so tools can route without parsing.
Events of one aggregate share one topic and are keyed by the aggregate id, so their order holds.

Schema evolution: consumers ignore unknown fields; a new *minor* version may only add optional
fields; a message whose *major* version the consumer does not know is dead-lettered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Topics are declared with their settings in ``topics``.
from .topics import (
    ACTORS_TOPIC,
    ANSWERS_TOPIC,
    CONFERENCES_TOPIC,
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    DEAD_LETTER_TOPIC,
    DELIVERIES_TOPIC,
    ERASURES_TOPIC,
    INVITATIONS_TOPIC,
    TEAMS_TOPIC,
    TOPIC_PARTITIONS,
    UNSUBSCRIBES_TOPIC,
)

# Re-exported: many modules import the topic names from here. The names this module defines are
# exported as always.
__all__ = [
    "ACTORS_TOPIC",
    "ANSWERS_TOPIC",
    "CONFERENCES_TOPIC",
    "CONTACTS_DEAD_LETTER_TOPIC",
    "CONTACTS_TOPIC",
    "DEAD_LETTER_TOPIC",
    "DELIVERIES_TOPIC",
    "ERASURES_TOPIC",
    "INVITATIONS_TOPIC",
    "TEAMS_TOPIC",
    "TOPIC_PARTITIONS",
    "UNSUBSCRIBES_TOPIC",
]


# --- base classes -------------------------------------------------------------------------------


class Event(BaseModel):
    """A fact that happened. Subclasses name their topic and the field holding their aggregate id
    (the Kafka key) in the class line, ``class X(Event, topic=..., key="..._id")``, and may raise
    their ``version``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: ClassVar[str]
    aggregate_field: ClassVar[str]
    version: ClassVar[str] = "1.0"
    # Major versions no consumer reads any more: skipped like an unknown event type, never
    # dead-lettered (see ``parse_payload``).
    retired_majors: ClassVar[frozenset[int]] = frozenset()

    def __init_subclass__(cls, *, topic: str | None = None, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if topic is not None:
            cls.topic = topic
        if key is not None:
            cls.aggregate_field = key

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_field))


class Envelope(BaseModel):
    """What travels on Kafka: metadata around one event's payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    event_type: str
    event_version: str = Field(pattern=r"^\d+\.\d+$")
    occurred_at: AwareDatetime
    correlation_id: str
    causation_id: str | None = None
    producer: str
    aggregate_id: str
    payload: dict[str, Any]
    # Who caused it: the subject (an opaque id from the token, never a name) of the HTTP request at
    # the start of the chain; consumers carry it on. Absent for events no person caused.
    initiated_by: str | None = None

    @property
    def major_version(self) -> int:
        return int(self.event_version.split(".", 1)[0])


EventT = TypeVar("EventT", bound=Event)


class EventMessage(Envelope, Generic[EventT]):
    """The envelope with its payload typed: how the event catalogue (AsyncAPI) shows a message."""

    payload: EventT  # type: ignore[assignment]


def wrap(
    event: Event,
    *,
    producer: str,
    correlation_id: str,
    causation_id: str | None = None,
    event_id: str | None = None,
    initiated_by: str | None = None,
) -> Envelope:
    """Put an event in its envelope. Pass ``event_id`` to make a re-run produce the same id."""
    return Envelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=type(event).__name__,
        event_version=type(event).version,
        occurred_at=datetime.now(UTC),
        correlation_id=correlation_id,
        causation_id=causation_id,
        producer=producer,
        aggregate_id=event.aggregate_id,
        payload=event.model_dump(mode="json"),
        initiated_by=initiated_by,
    )


@dataclass(frozen=True)
class EventContext:
    """Who is causing events now: the producer (a service's SERVICE_NAME), the correlation id
    that travels on from the first request, the event that caused them, if any, and the subject
    who started the chain (``initiated_by``), if a person did."""

    producer: str
    correlation_id: str
    causation_id: str | None = None
    initiated_by: str | None = None

    def wrap(self, event: Event, event_id: str | None = None) -> Envelope:
        return wrap(
            event,
            producer=self.producer,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            event_id=event_id,
            initiated_by=self.initiated_by,
        )


def kafka_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    return [
        ("event_id", envelope.event_id.encode()),
        ("event_type", envelope.event_type.encode()),
        ("event_version", envelope.event_version.encode()),
        ("correlation_id", envelope.correlation_id.encode()),
        ("producer", envelope.producer.encode()),
        ("content-type", b"application/json"),
    ]


# --- shared value objects -----------------------------------------------------------------------

Language = Literal["de", "en"]
Answer = Literal["accepted", "declined", "tentative"]
Audience = Literal["district", "team"]  # every invitable actor of the district, or its competence team
Reminder = Literal["please_answer", "see_you"]  # to those without an answer; to those who come


class Venue(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    address: str


class ConferenceDetails(BaseModel):
    """What an invitation says about its conference; carried in each invitation so the mail can
    be written from the invitation alone."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    conference_id: str
    district: str
    district_name: str
    title: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    timezone: str
    venue: Venue
    agenda: list[str]
    sequence: int = 0  # the calendar entry's SEQUENCE: one higher with each change and the cancellation
    audience: Audience = "district"


# --- actors -------------------------------------------------------------------------------------


class ActorEvent(Event, topic=ACTORS_TOPIC, key="actor_id"):
    """Any event of one actor: on the actors topic, keyed by the actor id, with the actor's
    revision after the change (consumers only ever move forward by it)."""

    actor_id: str
    revision: int


class ActorSnapshot(ActorEvent):
    """Full state of an actor, so consumers can keep their own copy (event-carried state).

    Version 2 carries no name and no e-mail address: those travel as ``ContactChanged`` on the
    contact topic, which only the notifications service reads. Version 1 (with both) is retired:
    consumers skip it (``retired_majors``), so a replay of an old log brings no name back."""

    version: ClassVar[str] = "2.0"
    retired_majors: ClassVar[frozenset[int]] = frozenset({1})

    kind: str
    districts: list[str]
    language: Language
    consent_to_notifications: bool
    active: bool = True
    # This change recorded consent given by staff on the person's behalf (a token subject, not the
    # person via link): the person is owed a notice (GDPR Art. 14). Never who recorded it.
    consent_recorded_by_staff: bool = False


class ActorRegistered(ActorSnapshot):
    """A quarter manager registered an actor for one or more districts (full snapshot, revision 1)."""


class ActorUpdated(ActorSnapshot):
    """An actor's data changed (full snapshot with the new revision)."""


class ActorDeactivated(ActorEvent):
    """An actor was deactivated: kept on record, no longer invited."""


class ActorErased(ActorDeactivated):
    """A data-protection officer had the actor erased (GDPR Art. 17): the actors service deleted its
    name and e-mail address at once and deactivated it for good. Ids only, no personal data. Every
    service that keeps a copy of the actor erases its copy and confirms with
    ``ActorErasureConfirmed``. It is an ``ActorDeactivated`` too, so a copy that only knows
    deactivation at least never invites or mails the actor again."""


class ActorErasureConfirmed(Event, topic=ERASURES_TOPIC, key="actor_id"):
    """A service (``conferences``, ``notifications``) finished erasing its copy of an actor after
    ``ActorErased``; the actors service shows it to the data-protection officer."""

    actor_id: str
    service: str = Field(min_length=1, max_length=64)
    erased_at: AwareDatetime


class ConsentWithdrawn(Event, topic=ACTORS_TOPIC, key="actor_id"):
    """An actor's consent to notifications was withdrawn by the person through the unsubscribe
    link (``UnsubscribeRequested``). Ids only; the ``ActorUpdated`` of the same revision carries
    the new state. Not an ``ActorEvent``: the actor copies learn it from that ``ActorUpdated``."""

    actor_id: str
    revision: int
    withdrawn_at: AwareDatetime


class UnsubscribeRequested(Event, topic=UNSUBSCRIBES_TOPIC, key="actor_id"):
    """A person asked, through the unsubscribe link of a mail (page or RFC 8058 one-click), to
    get no more mails; the actors service, which owns consent, withdraws it. Ids only."""

    actor_id: str
    requested_at: AwareDatetime


class ContactChanged(Event, topic=CONTACTS_TOPIC, key="actor_id"):
    """An actor's contact data as it is now: published with every change of the actor (same
    revision as its actor event), on the compacted contact topic keyed by the actor id, so the
    latest one per actor is what a rebuilt consumer reads. The only event with a name and an
    e-mail address; when the actor is erased, a tombstone under its id follows."""

    actor_id: str
    revision: int
    name: str
    email: str
    language: Language
    consent_to_notifications: bool
    active: bool = True
    # The districts the actor works in (the notice's footer says why the person gets mail).
    districts: list[str] = Field(default_factory=list)
    # This change recorded consent given by staff on the person's behalf (a token subject, not
    # the person via link): the person is owed a notice (GDPR Art. 14). Never who recorded it.
    consent_recorded_by_staff: bool = False


@dataclass(frozen=True)
class Tombstone:
    """A record with a key and no value: on a compacted topic, Kafka's way to delete everything
    under that key. Stored in the outbox like an event and published in its order."""

    topic: str
    key: str


class CompetenceTeamChanged(Event, topic=TEAMS_TOPIC, key="district"):
    """The members of a district's competence team were set: the whole list of actor ids (no
    names), with the team's revision after the change (consumers only ever move forward by it)."""

    district: str
    members: list[str]
    revision: int


# --- conferences --------------------------------------------------------------------------------


class ConferenceScheduled(Event, topic=CONFERENCES_TOPIC, key="conference_id"):
    """A coordinator scheduled an integration conference for a district."""

    conference_id: str
    details: ConferenceDetails


class ConferenceDrafted(Event, topic=CONFERENCES_TOPIC, key="conference_id"):
    """A coordinator drafted a conference: nobody is invited until it is published (which raises
    ``ConferenceScheduled``); the notifications service can already preview its mail."""

    conference_id: str
    details: ConferenceDetails


class InvitationIssued(Event, topic=INVITATIONS_TOPIC, key="invitation_id"):
    """An actor is invited to a conference; carries what the invitation mail needs."""

    invitation_id: str
    conference_id: str
    actor_id: str
    conference: ConferenceDetails
    # 0 for the invitation itself; n for the n-th resend a coordinator asked for. Each is a mail of
    # its own (its own Message-ID); a repeated event with the same number is the same mail.
    resend: int = Field(default=0, ge=0)


class ConferenceChanged(Event, topic=CONFERENCES_TOPIC, key="conference_id"):
    """A coordinator changed a scheduled conference (time, venue, title or agenda): ``details``
    as it is now, with the sequence one higher, and ``previous`` as it was."""

    conference_id: str
    details: ConferenceDetails
    previous: ConferenceDetails


class ConferenceCancelled(Event, topic=CONFERENCES_TOPIC, key="conference_id"):
    """A coordinator cancelled a conference; ``details`` carry the sequence one higher."""

    conference_id: str
    details: ConferenceDetails
    reason: str | None = None


class InvitationUpdated(Event, topic=INVITATIONS_TOPIC, key="invitation_id"):
    """An invitee who was sent the invitation is told what changed (the update mail follows): the
    conference as it is now and as it was; ``confirm`` asks one who accepted to confirm after a
    change of time. On the invitation's own key, so it never overtakes the invitation."""

    invitation_id: str
    conference_id: str
    actor_id: str
    conference: ConferenceDetails
    previous: ConferenceDetails
    confirm: bool = False


class InvitationCancelled(Event, topic=INVITATIONS_TOPIC, key="invitation_id"):
    """The conference of this invitation was cancelled: the cancellation mail follows if the
    invitation was sent; an invitation not yet sent is not sent at all."""

    invitation_id: str
    conference_id: str
    actor_id: str
    conference: ConferenceDetails
    reason: str | None = None


class InvitationReminded(Event, topic=INVITATIONS_TOPIC, key="invitation_id"):
    """A reminder fell due for this invitee (the reminder mail follows): ``please_answer`` to one
    without an answer, ``see_you`` to one who accepted or answered tentatively. ``reminder_id``
    names which (``P7D``, ``P1D``, or a coordinator's nudge), one mail each."""

    invitation_id: str
    conference_id: str
    actor_id: str
    conference: ConferenceDetails
    reminder: Reminder
    reminder_id: str


class InvitationAnswered(Event, topic=ANSWERS_TOPIC, key="invitation_id"):
    """An invitee answered through their personal link; a later answer replaces an earlier one.
    What is counted per conference, never the deputy's name or the comment (they stay with the
    conferences service)."""

    invitation_id: str
    conference_id: str
    actor_id: str
    answer: Answer
    attendees: int = Field(ge=0, le=10)
    interpreter_language: str | None = None  # ISO 639-1
    step_free_access: bool = False
    children: int = Field(default=0, ge=0, le=10)
    answered_at: AwareDatetime


# --- notifications ------------------------------------------------------------------------------


class InvitationOutcome(Event, topic=DELIVERIES_TOPIC, key="invitation_id"):
    """What became of one invitation mail: on the deliveries topic, keyed by the invitation id.
    Version 1.1 added ``resend``."""

    version: ClassVar[str] = "1.1"

    invitation_id: str
    conference_id: str
    actor_id: str
    # Which attempt this is the outcome of: the ``resend`` of the InvitationIssued it answers (0
    # for the invitation itself), so an outcome of an earlier attempt is not taken for the latest.
    resend: int = Field(default=0, ge=0)


class InvitationSent(InvitationOutcome):
    """The invitation mail was accepted by the SMTP server."""

    message_id: str
    sent_at: AwareDatetime


class InvitationFailed(InvitationOutcome):
    """The invitation mail could not be delivered: a permanent refusal, a server that kept
    answering "not now" for SMTP_RETRY_FOR, or too late (the conference had started). Version 1.2
    added ``bounced``."""

    version: ClassVar[str] = "1.2"

    reason: str
    failed_at: AwareDatetime
    # True: the mail was accepted (InvitationSent came before) and a bounce (a delivery status
    # notification, RFC 3464) reported it undeliverable later. Such a failure counts after sent.
    # The place for a bounce reader; no service raises it yet (README: Mail through a relay).
    bounced: bool = False


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        ActorRegistered,
        ActorUpdated,
        ActorDeactivated,
        ActorErased,
        ActorErasureConfirmed,
        ContactChanged,
        ConsentWithdrawn,
        UnsubscribeRequested,
        CompetenceTeamChanged,
        ConferenceScheduled,
        ConferenceDrafted,
        ConferenceChanged,
        ConferenceCancelled,
        InvitationIssued,
        InvitationUpdated,
        InvitationCancelled,
        InvitationReminded,
        InvitationSent,
        InvitationFailed,
        InvitationAnswered,
    )
}


def event_types_of(kind: type[Event]) -> list[type[Event]]:
    """The event types a handler of ``kind`` receives: ``kind`` itself, or every event type of
    this library that derives from it (``ActorEvent``: registered, updated, deactivated and erased)."""
    return [t for t in EVENT_TYPES.values() if issubclass(t, kind)] or [kind]


class UnknownEventVersion(ValueError):
    pass


def parse_payload(envelope: Envelope) -> Event | None:
    """The typed event inside an envelope; None for a type this library does not know, and for
    a retired major version of a known one (no service reads it any more).

    Raises ``UnknownEventVersion`` for a major version we cannot read and pydantic's
    ``ValidationError`` for a payload of the wrong shape: both belong in the dead-letter topic.
    """
    cls = EVENT_TYPES.get(envelope.event_type)
    if cls is None or envelope.major_version in cls.retired_majors:
        return None
    if envelope.major_version != int(cls.version.split(".", 1)[0]):
        raise UnknownEventVersion(
            f"{envelope.event_type} version {envelope.event_version} is not readable "
            f"(this consumer reads {cls.version})"
        )
    return cls.model_validate(envelope.payload)
