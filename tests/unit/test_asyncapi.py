"""The committed event catalogue (docs/asyncapi/) must be what the code generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.app import build as build_actors
from actors.settings import Settings as ActorsSettings
from conferences.app import build as build_conferences
from conferences.settings import Settings as ConferencesSettings
from notifications.app import build as build_notifications
from notifications.settings import Settings as NotificationsSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"
COMPOSE_KAFKA = "kafka:9092"


def generated() -> dict[str, dict[str, Any]]:
    return {
        "actors": build_actors(ActorsSettings(kafka_bootstrap_servers=COMPOSE_KAFKA)).state.asyncapi,
        "conferences": build_conferences(ConferencesSettings(kafka_bootstrap_servers=COMPOSE_KAFKA)).state.asyncapi,
        "notifications": build_notifications(
            NotificationsSettings(kafka_bootstrap_servers=COMPOSE_KAFKA)
        ).state.asyncapi,
    }


@pytest.mark.parametrize("service", ["actors", "conferences", "notifications"])
def test_committed_asyncapi_matches_the_code(service: str) -> None:
    committed = json.loads((DOCS / f"{service}.json").read_text())
    assert committed == generated()[service], f"docs/asyncapi/{service}.json is stale: run `make asyncapi`"


def test_every_event_has_its_producer_and_payload_schema() -> None:
    produced = {
        service: {
            channel.split(":", 1)[1]
            for channel, body in doc["channels"].items()
            if channel.startswith("quartier.") and "Message" in body["messages"]
        }
        for service, doc in generated().items()
    }
    assert produced == {
        "actors": {
            "ActorRegistered",
            "ActorUpdated",
            "ActorDeactivated",
            "ActorErased",
            "ConsentWithdrawn",
            "ContactChanged",
            "CompetenceTeamChanged",
        },
        "conferences": {
            "ConferenceScheduled",
            "ConferenceDrafted",
            "ConferenceChanged",
            "ConferenceCancelled",
            "InvitationIssued",
            "InvitationUpdated",
            "InvitationCancelled",
            "InvitationReminded",
            "InvitationAnswered",
            "ActorErasureConfirmed",
            "UnsubscribeRequested",
        },
        "notifications": {"InvitationSent", "InvitationFailed", "ActorErasureConfirmed"},
    }
    schemas = generated()["conferences"]["components"]["schemas"]
    envelope = schemas["EventMessage[InvitationIssued]"]
    assert {"event_id", "event_type", "event_version", "correlation_id", "payload"} <= set(envelope["properties"])
    assert "conference" in schemas["InvitationIssued"]["properties"]


def test_the_actors_service_hears_the_other_services_confirm_an_erasure() -> None:
    doc = generated()["actors"]
    consumed = {body["address"] for name, body in doc["channels"].items() if name.startswith("actors:consume")}
    assert consumed == {"quartier.erasures", "quartier.unsubscribes"}
    assert "consumes ActorErasureConfirmed" in doc["info"]["description"]
    erased = doc["components"]["schemas"]["ActorErased"]["properties"]
    assert set(erased) == {"actor_id", "revision"}  # ids only: no personal data on the topic


def test_an_unsubscribe_travels_with_ids_only() -> None:
    """The page (conferences) asks, the actors service applies it and says so: ids and times only."""
    actors, conferences = generated()["actors"], generated()["conferences"]
    assert "consumes ActorErasureConfirmed and UnsubscribeRequested" in actors["info"]["description"]
    requested = conferences["components"]["schemas"]["UnsubscribeRequested"]["properties"]
    assert set(requested) == {"actor_id", "requested_at"}
    withdrawn = actors["components"]["schemas"]["ConsentWithdrawn"]["properties"]
    assert set(withdrawn) == {"actor_id", "revision", "withdrawn_at"}


def test_notifications_consumes_what_follows_an_invitation() -> None:
    """The update, cancellation and reminder of an invitation are read by the notifications service
    (on the invitations topic, which it already reads for InvitationIssued)."""
    channels = generated()["notifications"]["channels"]
    (consumer,) = {body["description"] for name, body in channels.items() if ":consume:" in name}
    consumed = set(consumer.removeprefix("Consumes ").split(";")[0].split(", "))
    assert {"InvitationIssued", "InvitationUpdated", "InvitationCancelled", "InvitationReminded"} <= consumed
    assert any(name.endswith(":consume:quartier.invitations") for name in channels)


def test_names_and_addresses_travel_on_the_contact_topic_read_by_notifications_only() -> None:
    actors = generated()["actors"]
    schemas = actors["components"]["schemas"]
    for snapshot in ("ActorRegistered", "ActorUpdated"):
        assert not {"name", "email"} & set(schemas[snapshot]["properties"])
    assert {"name", "email"} <= set(schemas["ContactChanged"]["properties"])
    # what the Art. 14 notice is sent on, and the districts its footer names
    assert {"consent_recorded_by_staff", "districts"} <= set(schemas["ContactChanged"]["properties"])
    registered = actors["channels"]["quartier.actors:ActorRegistered"]["description"]
    assert "Version 2.0." in registered and "Version 1.x is retired" in registered
    assert actors["channels"]["quartier.contacts:ContactChanged"]["address"] == "quartier.contacts"
    consumed = {
        service: {body["address"] for name, body in doc["channels"].items() if ":consume:" in name}
        for service, doc in generated().items()
    }
    assert "quartier.contacts" in consumed["notifications"]
    assert "quartier.contacts" not in consumed["conferences"] | consumed["actors"]
