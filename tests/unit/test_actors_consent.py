"""Actors: consent as records, its reset when the e-mail address changes, and erasure (pure domain)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from actors.commands import RegisterActor
from actors.consent import EMAIL_CHANGED, ERASED, HISTORY_LIMIT, ConsentStatement
from actors.domain import ERASED_EMAIL, ERASED_NAME, Actor, ActorIsErased
from quartier_shared.events import ActorErased, ActorUpdated

GIVEN = ConsentStatement(True, "consent", "2026-11")
REGISTRATION = RegisterActor(
    name="Migrantenselbstorganisation Altendorf",
    kind="migrant_organisation",
    districts=["III"],
    email="mso-altendorf@example.org",
    language="de",
    consent=GIVEN,
    by="subject-manager",
)


def test_registration_records_consent_with_who_when_basis_and_wording() -> None:
    actor, registered = Actor.register(replace(REGISTRATION, consent=ConsentStatement(True, "public_task", "2026-09")))
    [record] = actor.consent_history
    assert actor.consent == record and record.given and actor.consent_to_notifications
    assert (record.basis, record.wording_version, record.by, record.reason) == (
        "public_task",
        "2026-09",
        "subject-manager",
        None,
    )
    assert registered.consent_to_notifications is True
    assert not Actor.register(replace(REGISTRATION, consent=replace(GIVEN, given=False)))[0].consent_to_notifications


def test_withdrawing_adds_a_record_and_the_boolean_follows_it() -> None:
    actor, _ = Actor.register(REGISTRATION)
    withdrawn, event = actor.update({}, replace(GIVEN, given=False), by="subject-coordinator")
    assert isinstance(event, ActorUpdated) and event.consent_to_notifications is False
    assert [r.given for r in withdrawn.consent_history] == [True, False]
    assert withdrawn.consent is not None and withdrawn.consent.by == "subject-coordinator"
    assert withdrawn.revision == 2 and not withdrawn.consent_to_notifications
    # saying it again changes nothing; a new wording version is a new record
    assert withdrawn.update({}, replace(GIVEN, given=False), by="x") == (withdrawn, None)
    again, event = withdrawn.update({}, ConsentStatement(True, "consent", "2027-01"), by="x")
    assert event is not None and again.consent is not None and again.consent.wording_version == "2027-01"


def test_a_new_email_address_withdraws_consent_unless_the_same_change_records_it() -> None:
    actor, _ = Actor.register(REGISTRATION)
    moved, event = actor.update({"email": "neu@example.org"}, None, by="subject-qm")
    assert event is not None and event.consent_to_notifications is False
    assert moved.contact().email == "neu@example.org" and moved.contact().revision == event.revision
    assert moved.consent is not None
    assert (moved.consent.given, moved.consent.reason, moved.consent.by) == (False, EMAIL_CHANGED, "subject-qm")
    assert (moved.consent.basis, moved.consent.wording_version) == ("consent", "2026-11")

    # the same consent with the new address: recorded again, for the new address
    kept, event = actor.update({"email": "neu@example.org"}, GIVEN, by="subject-qm")
    assert event is not None and event.consent_to_notifications is True
    assert len(kept.consent_history) == 2 and kept.consent is not None and kept.consent.reason is None

    # the same address written again is no change: consent stays
    same, nothing = actor.update({"email": actor.email}, None, by="subject-qm")
    assert same == actor and nothing is None
    # without consent there is nothing to withdraw: the address changes, no record is added
    quiet, _ = moved.update({"email": "dritte@example.org"}, None, by="subject-qm")
    assert len(quiet.consent_history) == 2 and quiet.email == "dritte@example.org"


def test_the_history_is_bounded_and_keeps_the_latest() -> None:
    actor, _ = Actor.register(REGISTRATION)
    for n in range(HISTORY_LIMIT + 5):
        actor, _ = actor.update({}, replace(GIVEN, given=n % 2 == 0), by=f"s{n}")
    assert len(actor.consent_history) == HISTORY_LIMIT
    assert actor.consent is not None and actor.consent.by == f"s{HISTORY_LIMIT + 4}"


def test_erasure_removes_name_and_address_withdraws_consent_and_is_final() -> None:
    actor, _ = Actor.register(REGISTRATION)
    erased, event = actor.erase("subject-dpo")
    assert event == ActorErased(actor_id=actor.id, revision=2)
    assert set(event.model_dump()) == {"actor_id", "revision"}  # no personal data
    assert (erased.name, erased.email) == (ERASED_NAME, ERASED_EMAIL)
    assert not erased.active and not erased.consent_to_notifications and erased.erased_at is not None
    assert (erased.id, erased.kind, erased.districts) == (actor.id, actor.kind, actor.districts)
    assert erased.consent is not None and (erased.consent.given, erased.consent.reason) == (False, ERASED)
    assert REGISTRATION.name not in repr(erased) and REGISTRATION.email not in repr(erased)

    assert erased.erase("subject-dpo") == (erased, None)  # idempotent
    assert erased.deactivate() == (erased, None)
    with pytest.raises(ActorIsErased):
        erased.update({"name": "Wieder da"})
    with pytest.raises(ActorIsErased):
        erased.update({}, GIVEN, by="subject-coordinator")


def test_the_contact_says_when_staff_just_recorded_consent_on_the_persons_behalf() -> None:
    """The ContactChanged recorded with each change (``contact(after=event)``) carries the flag
    notifications sends the notice (GDPR Art. 14) on, and the districts its footer names."""
    actor, registered = Actor.register(REGISTRATION)
    contact = actor.contact(after=registered)
    assert registered.consent_recorded_by_staff and contact.consent_recorded_by_staff
    assert contact.districts == ["III"] and contact.revision == registered.revision
    assert "subject-manager" not in contact.model_dump_json()  # never who recorded it
    refused, refusal = Actor.register(replace(REGISTRATION, consent=replace(GIVEN, given=False)))
    assert not refused.contact(after=refusal).consent_recorded_by_staff
    # another field only: no new consent record, no flag
    renamed, rename = actor.update({"name": "MSO Altendorf e.V."}, None, by="subject-qm")
    assert rename is not None and not renamed.contact(after=rename).consent_recorded_by_staff
    # the person withdrew via link: no flag; consent given again by staff is a new record: flagged
    unsubscribed, raised = renamed.unsubscribe(datetime.now(UTC))
    assert raised is not None
    _, via_link = raised
    assert not via_link.consent_recorded_by_staff and not unsubscribed.contact(after=via_link).consent_recorded_by_staff
    again, regiven = unsubscribed.update({"districts": ["III", "IV"]}, GIVEN, by="subject-qm")
    assert regiven is not None
    assert again.contact(after=regiven).consent_recorded_by_staff and again.contact(after=regiven).districts == [
        "III",
        "IV",
    ]
    assert not again.contact().consent_recorded_by_staff  # without the change's event (a republication)
