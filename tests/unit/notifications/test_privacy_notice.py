"""The notice (GDPR Art. 14) to a person whose consent staff recorded (a ContactChanged with
``consent_recorded_by_staff``): rendered in German and English with what, why, by whom, their
rights and the unsubscribe link; sent once per actor, and not for consent by link, without
consent, or to an erased or inactive actor; of no conference (the export shows none)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from structlog.testing import capture_logs

from notifications.domain import Contact, DeliveryStatus
from quartier_shared.events import ActorErased, ContactChanged, InvitationFailed, Language
from tests.unit.notifications.fakes import POLICY, Notifications, actor


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content())


@pytest.mark.parametrize(
    ("language", "subject", "phrases"),
    [
        (
            "de",
            "Art. 14 DSGVO",
            [
                "Ihr Name, Ihre E-Mail-Adresse, Ihre Stadtbezirke",
                "Integrationskonferenzen Ihres Stadtbezirks",
                "Verantwortlich ist die Stadt: Integrationskonferenzen Essen",
                "Recht auf Auskunft",
            ],
        ),
        (
            "en",
            "Art. 14 GDPR",
            [
                "your name, your e-mail address, your districts",
                "integration conferences of your district",
                "The controller is the city: Integrationskonferenzen Essen",
                "right to access",
            ],
        ),
    ],
)
async def test_the_notice_says_what_why_by_whom_and_the_rights_in_the_persons_language(
    language: Language, subject: str, phrases: list[str]
) -> None:
    service = Notifications()
    await service.on_actor(actor("ada@example.org", language=language, by_staff=True))
    [mail] = service.mailer.sent
    message = parsed(mail.as_bytes())
    assert subject in str(message["Subject"]) and message["Content-Language"] == language
    assert message["List-Unsubscribe"].startswith("<https://") and "/unsubscribe/" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain, html = body(message, "plain"), body(message, "html")
    for phrase in phrases:
        assert phrase in " ".join(plain.split())
    for text in (plain, html):
        assert POLICY.privacy_url in text and "/unsubscribe/" in text and "IV" in text  # footer: its district
    assert message["Message-ID"] == mail.message_id and "notice-" in mail.message_id


async def test_one_notice_per_actor_however_often_consent_is_recorded_again() -> None:
    service = Notifications()
    ada = actor("ada@example.org", by_staff=True)
    await service.on_actor(ada, ada)  # a redelivery
    await service.on_actor(actor("ada@example.org", revision=2, consent=False))  # the person withdrew
    await service.on_actor(actor("ada@example.org", revision=3, by_staff=True))  # staff record it again: no notice
    assert service.mailer.recipients() == ["ada@example.org"]
    assert service.uow.fake_deliveries.status("notice:actor-ada@example.org") is DeliveryStatus.SENT
    assert service.uow.events == []  # a notice raises no event (no InvitationSent/Failed)


async def test_the_notice_belongs_to_no_conference_and_never_counts_as_started() -> None:
    service = Notifications()
    await service.on_actor(actor("ada@example.org", by_staff=True))
    notice = service.delivery("notice:actor-ada@example.org")
    assert not notice.has_conference and (notice.invitation_id, notice.conference_id) == ("", "")
    assert not notice.started(datetime.max.replace(tzinfo=UTC))
    assert notice.conference.district_name == "IV"  # the actor's districts, for the footer


async def test_a_redelivery_after_the_contact_was_saved_still_sends_the_notice_once() -> None:
    service = Notifications()
    ada = actor("ada@example.org", by_staff=True)
    contact = Contact.after(ada, None)
    assert contact is not None
    await service.uow.contacts.save(contact)  # as if the first attempt crashed right after this
    await service.on_actor(ada, ada)
    assert service.mailer.recipients() == ["ada@example.org"]


@pytest.mark.parametrize(
    "event",
    [
        actor("ada@example.org"),  # consent recorded by the person via link, or no new record
        actor("ada@example.org", consent=False, by_staff=True),  # not given
        actor("ada@example.org", active=False, by_staff=True),  # inactive
    ],
)
async def test_no_notice_without_staff_recorded_consent_or_to_an_inactive_actor(event: ContactChanged) -> None:
    service = Notifications()
    await service.on_actor(event)
    assert service.mailer.sent == []


async def test_no_notice_to_an_erased_actor_even_when_its_old_events_come_again() -> None:
    service = Notifications()
    ada = actor("ada@example.org", by_staff=True)
    await service.on_erased(ActorErased(actor_id=ada.actor_id, revision=5))
    await service.on_actor(ada)
    assert service.mailer.sent == [] and service.events(InvitationFailed) == []


async def test_the_notice_logs_no_address_name_or_link() -> None:
    service = Notifications()
    with capture_logs() as logs:
        await service.on_actor(actor("ada@example.org", by_staff=True))
    assert {entry["event"] for entry in logs} >= {"notice_sent"}
    logged = repr(logs)
    assert "@example.org" not in logged and "Runder Tisch" not in logged and "unsubscribe" not in logged
