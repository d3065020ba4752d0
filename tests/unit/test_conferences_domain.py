"""Conferences: who is invited, invitation ids and status transitions (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conferences.domain import Conference, Invitation, RosterEntry
from quartier_shared.events import Venue

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def conference(**overrides: object) -> Conference:
    fields: dict[str, object] = {
        "district": "IV",
        "district_name": "Borbeck",
        "timezone": "Europe/Berlin",
        "title": "Integrationskonferenz Borbeck",
        "starts_at": NOW + timedelta(days=30),
        "ends_at": NOW + timedelta(days=30, hours=3),
        "venue": Venue(name="Kulturzentrum", address="Musterstraße 1"),
        "agenda": ["Begrüßung"],
        "now": NOW,
    }
    fields.update(overrides)
    return Conference.schedule(**fields)  # type: ignore[arg-type]


def entry(districts: tuple[str, ...] = ("IV",), active: bool = True, consent: bool = True) -> RosterEntry:
    return RosterEntry("a1", districts, active, consent, revision=1)


def test_invites_active_consenting_actors_of_its_district_only() -> None:
    c = conference()
    assert c.invites(entry())
    assert c.invites(entry(("III", "IV")))
    assert not c.invites(entry(("III",)))
    assert not c.invites(entry(active=False))
    assert not c.invites(entry(consent=False))


def test_schedule_refuses_impossible_times() -> None:
    with pytest.raises(ValueError, match="after"):
        conference(ends_at=NOW + timedelta(days=29))
    with pytest.raises(ValueError, match="future"):
        conference(starts_at=NOW - timedelta(days=1), ends_at=NOW)


def test_invitation_ids_are_derived_so_a_rerun_finds_the_same() -> None:
    assert Invitation.id_for("c1", "a1") == Invitation.id_for("c1", "a1")
    assert Invitation.id_for("c1", "a1") != Invitation.id_for("c1", "a2")
    assert Invitation.issued_event_id("i1") == Invitation.issued_event_id("i1")


def test_details_carry_what_the_mail_needs() -> None:
    details = conference().details
    assert details.district_name == "Borbeck" and details.timezone == "Europe/Berlin"
    assert details.sequence == 0
