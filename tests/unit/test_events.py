"""The event library: envelopes, versions and what a consumer must refuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from quartier_shared.catalogue import load_catalogue
from quartier_shared.consumer import describe_error
from quartier_shared.events import (
    ACTORS_TOPIC,
    TOPIC_PARTITIONS,
    ActorDeactivated,
    ActorErased,
    ActorEvent,
    ActorRegistered,
    ActorUpdated,
    ConferenceScheduled,
    Envelope,
    Event,
    InvitationFailed,
    InvitationOutcome,
    InvitationSent,
    UnknownEventVersion,
    event_types_of,
    parse_payload,
    wrap,
)
from quartier_shared.logging import redact


def test_an_event_round_trips_through_its_envelope() -> None:
    event = ActorDeactivated(actor_id="a1", revision=3)
    envelope = wrap(event, producer="actors", correlation_id="c-1", causation_id="e-0")
    assert envelope.aggregate_id == "a1" and envelope.event_type == "ActorDeactivated"
    again = Envelope.model_validate_json(envelope.model_dump_json())
    assert parse_payload(again) == event
    assert ActorDeactivated.topic == ACTORS_TOPIC and ACTORS_TOPIC in TOPIC_PARTITIONS


def test_unknown_fields_are_ignored_and_a_new_minor_version_is_read() -> None:
    envelope = wrap(ActorDeactivated(actor_id="a1", revision=3), producer="p", correlation_id="c")
    newer = envelope.model_copy(update={"event_version": "1.4", "payload": {**envelope.payload, "extra": 1}})
    assert parse_payload(newer) == ActorDeactivated(actor_id="a1", revision=3)


def test_an_unknown_major_version_or_wrong_shape_is_refused() -> None:
    envelope = wrap(ActorDeactivated(actor_id="a1", revision=3), producer="p", correlation_id="c")
    with pytest.raises(UnknownEventVersion):
        parse_payload(envelope.model_copy(update={"event_version": "2.0"}))
    with pytest.raises(ValidationError):
        parse_payload(envelope.model_copy(update={"payload": {"actor_id": "a1"}}))
    assert parse_payload(envelope.model_copy(update={"event_type": "SomethingElse"})) is None


def test_error_descriptions_never_echo_personal_data() -> None:
    with pytest.raises(ValidationError) as caught:
        Envelope.model_validate({"event_id": "x", "payload": {"email": "person@example.org"}})
    described = describe_error(caught.value)
    assert "person@example.org" not in described and "event_type" in described
    assert redact("550 <person@example.org> unknown") == "550 <<address>> unknown"


def test_catalogue_seed_is_essen() -> None:
    catalogue = load_catalogue()
    assert catalogue.district_codes == {"I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"}
    assert "welfare_association" in catalogue.kinds


def test_a_handler_of_a_base_class_receives_each_event_type_derived_from_it() -> None:
    assert set(event_types_of(ActorEvent)) == {ActorRegistered, ActorUpdated, ActorDeactivated, ActorErased}
    outcomes: set[type[Event]] = {InvitationSent, InvitationFailed}
    assert set(event_types_of(InvitationOutcome)) == outcomes
    assert event_types_of(ConferenceScheduled) == [ConferenceScheduled]
