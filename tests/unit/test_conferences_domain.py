"""Conferences: who is invited, invitation ids, the roster's revisions and delivery outcomes
(pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conferences.commands import ChangeConference, ScheduleConference
from conferences.domain import (
    Conference,
    ConferenceStatus,
    Invitation,
    InvitationAnswer,
    InvitationStatus,
    NotNow,
    Reminder,
    RosterEntry,
)
from quartier_shared.catalogue import load_catalogue
from quartier_shared.events import (
    ActorDeactivated,
    ActorRegistered,
    ConferenceDrafted,
    ConferenceScheduled,
    InvitationFailed,
    InvitationSent,
    Venue,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def schedule(**overrides: Any) -> tuple[Conference, ConferenceScheduled | ConferenceDrafted]:
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


def test_a_bounce_after_the_mail_was_accepted_makes_a_sent_invitation_failed() -> None:
    invitation, _ = Invitation.issue(conference(), "a1")
    sent = InvitationSent(invitation_id=invitation.id, conference_id="c", actor_id="a1", message_id="<m>", sent_at=NOW)
    bounce = InvitationFailed(
        invitation_id=invitation.id,
        conference_id="c",
        actor_id="a1",
        reason="bounced: 5.1.1 mailbox unknown",
        failed_at=NOW + timedelta(hours=1),
        bounced=True,
    )
    after_bounce = invitation.with_outcome(sent, NOW).with_outcome(bounce, NOW + timedelta(hours=1))
    assert (after_bounce.status, after_bounce.reason) == (InvitationStatus.FAILED, "bounced: 5.1.1 mailbox unknown")
    assert invitation.with_outcome(bounce.model_copy(update={"resend": 1}), NOW) == invitation  # another attempt's


def draft() -> Conference:
    drafted, event = schedule(draft=True)
    assert isinstance(event, ConferenceDrafted)
    return drafted


def test_a_draft_raises_conference_drafted_and_is_not_upcoming() -> None:
    drafted, event = schedule(draft=True)
    assert drafted.status is ConferenceStatus.DRAFT
    assert event == ConferenceDrafted(conference_id=drafted.id, details=drafted.details)
    # Neither the fan-out nor a late joiner invites anyone to it.
    assert not drafted.is_upcoming(NOW)
    scheduled, _ = schedule()
    assert scheduled.status is ConferenceStatus.SCHEDULED and scheduled.is_upcoming(NOW)


def test_publishing_a_draft_raises_conference_scheduled_with_the_same_details_once() -> None:
    drafted = draft()
    published, event = drafted.publish(NOW)
    assert published.status is ConferenceStatus.SCHEDULED and published.is_upcoming(NOW)
    assert event == ConferenceScheduled(conference_id=drafted.id, details=drafted.details)
    assert published.details == drafted.details  # the calendar's SEQUENCE stays that of the first request
    assert published.publish(NOW) == (published, None)  # twice: nothing more
    assert published.published_event_id == drafted.published_event_id


def test_a_draft_whose_start_has_passed_cannot_be_published() -> None:
    drafted = draft()
    with pytest.raises(NotNow, match="started"):
        drafted.publish(drafted.starts_at)


def test_a_resend_is_a_new_attempt_with_its_own_event() -> None:
    c = conference()
    invitation, first = Invitation.issue(c, "a1")
    failed = InvitationFailed(
        invitation_id=invitation.id, conference_id=c.id, actor_id="a1", reason="SMTP 550", failed_at=NOW
    )
    invitation = invitation.with_outcome(failed, NOW)
    again, issued = invitation.resent(c, NOW)
    assert (again.status, again.reason, again.resend) == (InvitationStatus.PENDING, None, 1)
    assert issued == first.model_copy(update={"resend": 1})
    assert again.issued_event_id != invitation.issued_event_id
    third, issued_third = again.resent(c, NOW)
    assert third.resend == issued_third.resend == 2
    assert len({invitation.issued_event_id, again.issued_event_id, third.issued_event_id}) == 3


def test_only_the_outcome_of_the_latest_attempt_counts() -> None:
    c = conference()
    invitation, _ = Invitation.issue(c, "a1")
    sent_first = InvitationSent(
        invitation_id=invitation.id, conference_id=c.id, actor_id="a1", message_id="<1>", sent_at=NOW
    )
    invitation = invitation.with_outcome(sent_first, NOW)
    assert invitation.status is InvitationStatus.SENT
    # Sent is final for its attempt, but a resend makes it pending again ...
    again, _ = invitation.resent(c, NOW)
    assert again.status is InvitationStatus.PENDING
    # ... and a late copy of the first attempt's outcome does not end the second.
    late_failure = InvitationFailed(
        invitation_id=invitation.id, conference_id=c.id, actor_id="a1", reason="x", failed_at=NOW
    )
    assert again.with_outcome(sent_first, NOW) == again
    assert again.with_outcome(late_failure, NOW) == again
    failed = late_failure.model_copy(update={"resend": 1, "reason": "SMTP 550"})
    after = again.with_outcome(failed, NOW)
    assert (after.status, after.reason) == (InvitationStatus.FAILED, "SMTP 550")
    sent = sent_first.model_copy(update={"resend": 1, "message_id": "<2>"})
    assert after.with_outcome(sent, NOW).status is InvitationStatus.SENT


def test_no_resend_for_a_draft_or_a_conference_that_has_started() -> None:
    c = conference()
    invitation, _ = Invitation.issue(c, "a1")
    with pytest.raises(NotNow, match="draft"):
        invitation.resent(draft(), NOW)
    with pytest.raises(NotNow, match="started"):
        invitation.resent(c, c.starts_at)


def test_reminders_are_planned_before_the_start_and_past_ones_skipped() -> None:
    c = conference()  # 30 days after NOW
    offsets = [("P7D", timedelta(days=7)), ("P40D", timedelta(days=40))]
    [reminder] = c.reminders(offsets, NOW)
    assert (reminder.id, reminder.name, reminder.due_at) == (f"{c.id}/P7D", "P7D", c.starts_at - timedelta(days=7))
    draft, _ = schedule(draft=True)
    assert draft.reminders(offsets, NOW) == []


def test_a_reminders_event_follows_the_answer_and_its_id_the_reminder_its_due_time_and_the_invitation() -> None:
    c = conference()
    invitation, _ = Invitation.issue(c, "a1")
    sent = Invitation(invitation.id, c.id, "a1", status=InvitationStatus.SENT)
    reminder = Reminder.of(c.id, "P7D", c.starts_at - timedelta(days=7))
    assert reminder.event_for(invitation, c) is None  # not sent yet
    found = reminder.event_for(sent, c)
    assert found is not None
    event, event_id = found
    assert (event.reminder, event.reminder_id, event.conference) == ("please_answer", "P7D", c.details)
    again = reminder.event_for(sent, c)
    assert again is not None and again[1] == event_id
    moved = Reminder.of(c.id, "P7D", c.starts_at - timedelta(days=6))
    assert (moved_event := moved.event_for(sent, c)) is not None and moved_event[1] != event_id
    nudge = Reminder.nudge(c.id, NOW)
    assert nudge.name == "nudge-20300101T000000Z" and nudge.is_nudge
    for answer, planned in (("accepted", "see_you"), ("tentative", "see_you"), ("declined", None)):
        given = InvitationAnswer(answer, 1, None, None, False, 0, None, NOW)  # type: ignore[arg-type]
        answered = Invitation(invitation.id, c.id, "a1", status=InvitationStatus.SENT, answer=given)
        found = reminder.event_for(answered, c)
        assert (found[0].reminder if found else None) == planned
        assert nudge.event_for(answered, c) is None  # a nudge is for those without an answer only


def test_a_change_raises_the_details_now_and_before_and_cancelling_twice_raises_once() -> None:
    c = conference()
    changed, event = c.change(ChangeConference(c.id, title="Neu", agenda=["A", "B"]), NOW)
    assert event is not None and (changed.sequence, changed.title, changed.agenda) == (1, "Neu", ("A", "B"))
    assert (event.details, event.previous) == (changed.details, c.details)
    assert not changed.time_changed(c.details)
    cancelled, cancellation = changed.cancel("Raum", NOW)
    assert (
        cancellation is not None
        and cancellation.details.sequence == 2
        and cancelled.status is ConferenceStatus.CANCELLED
    )
    assert cancelled.cancel("Raum", NOW) == (cancelled, None)
    with pytest.raises(NotNow):
        cancelled.change(ChangeConference(c.id, title="Noch einmal"), NOW)
    with pytest.raises(NotNow):
        cancelled.publish(NOW)
