"""Conferences: who is invited, invitation ids, the roster's revisions and delivery outcomes
(pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conferences.commands import ScheduleConference
from conferences.domain import Conference, Invitation, InvitationStatus, RosterEntry
from quartier_shared.catalogue import load_catalogue
from quartier_shared.events import (
    ActorDeactivated,
    ActorRegistered,
    ConferenceScheduled,
    InvitationFailed,
    InvitationSent,
    Venue,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def schedule(**overrides: Any) -> tuple[Conference, ConferenceScheduled]:
    fields: dict[str, Any] = {
        "district": "IV",
        "title": "Integrationskonferenz Borbeck",
        "starts_at": NOW + timedelta(days=30),
        "ends_at": NOW + timedelta(days=30, hours=3),
        "venue": Venue(name="Kulturzentrum", address="Musterstraße 1"),
        "agenda": ["Begrüßung"],
    }
    command = ScheduleConference(**{**fields, **overrides})
    catalogue = load_catalogue()
    district = catalogue.district(command.district)
    assert district is not None
    return Conference.schedule(command, district=district, timezone=catalogue.timezone, now=NOW)


def conference() -> Conference:
    return schedule()[0]


def entry(districts: tuple[str, ...] = ("IV",), active: bool = True, consent: bool = True) -> RosterEntry:
    return RosterEntry("a1", districts, active, consent, revision=1)


def test_scheduling_raises_the_event_with_the_catalogues_names() -> None:
    c, scheduled = schedule()
    assert scheduled == ConferenceScheduled(conference_id=c.id, details=c.details)
    assert c.district_name == "Borbeck" and c.timezone == "Europe/Berlin" and c.agenda == ("Begrüßung",)
    details = c.details
    assert details.conference_id == c.id and details.district_name == "Borbeck" and details.sequence == 0
    assert details.venue == c.venue and details.agenda == ["Begrüßung"]


def test_invites_active_consenting_actors_of_its_district_only() -> None:
    c = conference()
    assert c.invites(entry())
    assert c.invites(entry(("III", "IV")))
    assert not c.invites(entry(("III",)))
    assert not c.invites(entry(active=False))
    assert not c.invites(entry(consent=False))


def test_schedule_refuses_impossible_times() -> None:
    with pytest.raises(ValueError, match="after"):
        schedule(ends_at=NOW + timedelta(days=29))
    with pytest.raises(ValueError, match="future"):
        schedule(starts_at=NOW - timedelta(days=1), ends_at=NOW)


def test_invitation_and_event_ids_are_derived_so_a_rerun_finds_the_same() -> None:
    c = conference()
    first, issued = Invitation.issue(c, "a1")
    again, _ = Invitation.issue(c, "a1")
    other, _ = Invitation.issue(c, "a2")
    assert first.id == again.id == Invitation.id_for(c.id, "a1") != other.id
    assert first.issued_event_id == again.issued_event_id != other.issued_event_id
    assert issued.invitation_id == first.id and issued.conference == c.details


def test_the_roster_moves_forward_by_revision_only() -> None:
    registered = ActorRegistered(
        actor_id="a1",
        revision=2,
        name="x",
        kind="church_parish",
        districts=["IV"],
        email="a@example.org",
        language="de",
        consent_to_notifications=True,
    )
    current = RosterEntry.after(registered, None)
    assert current == RosterEntry("a1", ("IV",), True, True, 2)
    assert RosterEntry.after(registered, current) is None  # repeated
    assert RosterEntry.after(registered.model_copy(update={"revision": 1}), current) is None  # older
    gone = RosterEntry.after(ActorDeactivated(actor_id="a1", revision=3), current)
    assert gone == RosterEntry("a1", ("IV",), False, True, 3) and not gone.invitable
    assert RosterEntry.after(ActorDeactivated(actor_id="a9", revision=3), None) is None  # never seen


def test_sent_is_final_and_failed_may_become_sent() -> None:
    invitation, _ = Invitation.issue(conference(), "a1")
    failed = InvitationFailed(
        invitation_id=invitation.id, conference_id="c", actor_id="a1", reason="SMTP 451", failed_at=NOW
    )
    sent = InvitationSent(invitation_id=invitation.id, conference_id="c", actor_id="a1", message_id="<m>", sent_at=NOW)
    after_failure = invitation.with_outcome(failed, NOW)
    assert (after_failure.status, after_failure.reason) == (InvitationStatus.FAILED, "SMTP 451")
    after_sent = after_failure.with_outcome(sent, NOW)
    assert (after_sent.status, after_sent.reason) == (InvitationStatus.SENT, None)
    assert after_sent.with_outcome(failed, NOW + timedelta(hours=1)) == after_sent
