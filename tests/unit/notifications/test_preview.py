"""Before the fan-out, on fakes: the copy of conferences notifications keeps, the preview (the
invitation mail exactly as an invitee gets it) and the test mail (marked, its own Message-ID,
counted, no delivery, no event, its address in no log line)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from email.message import EmailMessage

import pytest
from structlog.testing import capture_logs

from notifications import handlers
from notifications.commands import SendTestMail
from notifications.handlers import ConferenceUnknown, TestMailLimit, TestMailNotSent, TooManyTestMails
from notifications.mail import OutgoingMail, Recipient, render_invitation
from notifications.preview import PLACEHOLDER_NAME, Preview, placeholder_invitation_id
from notifications.smtp import PermanentMailError
from quartier_shared.events import ConferenceDrafted, ConferenceScheduled, EventContext, Language
from tests.unit.fakes import received
from tests.unit.notifications.fakes import CONFERENCE, FOOTER, POLICY, SERVICE, FakeMailer, Notifications

CONTEXT = EventContext(SERVICE, "request-1")
LIMIT = TestMailLimit(per_hour=3)


async def knowing(service: Notifications, *events: ConferenceDrafted | ConferenceScheduled) -> None:
    for event in events:
        await handlers.keep_conference(received(event, SERVICE), uow_factory=service.uow)


def parsed(mail: OutgoingMail) -> EmailMessage:
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_the_copy_of_a_conference_moves_forward_by_sequence_only() -> None:
    service = Notifications()
    drafted = ConferenceDrafted(conference_id=CONFERENCE.conference_id, details=CONFERENCE)
    changed = CONFERENCE.model_copy(update={"sequence": 1, "title": "Neuer Titel"})
    await knowing(service, drafted)
    assert (await service.uow.fake_conferences.get(CONFERENCE.conference_id)).details == CONFERENCE  # type: ignore[union-attr]
    # Published (the same sequence: the same details), a change, then an old copy redelivered.
    await knowing(
        service,
        ConferenceScheduled(conference_id=CONFERENCE.conference_id, details=CONFERENCE),
        ConferenceScheduled(conference_id=CONFERENCE.conference_id, details=changed),
        drafted,
    )
    known = await service.uow.fake_conferences.get(CONFERENCE.conference_id)
    assert known is not None and known.details == changed
    assert service.mailer.sent == [] and service.uow.events == []


@pytest.mark.parametrize("language", ["de", "en"])
async def test_the_preview_is_the_invitation_mail_for_a_placeholder_invitee(language: Language) -> None:
    service = Notifications()
    await knowing(service, ConferenceDrafted(conference_id=CONFERENCE.conference_id, details=CONFERENCE))
    shown = await handlers.preview_mail(
        CONFERENCE.conference_id, language, CONTEXT, uow_factory=service.uow, policy=POLICY
    )
    # What the sending path renders for a real invitee of the same conference, read back the same way.
    name = PLACEHOLDER_NAME[language]
    real = Preview.of(
        render_invitation(
            conference=CONFERENCE,
            recipient=Recipient(name="Runder Tisch Frintrop", email="frintrop@example.org", language=language),
            sender=POLICY.sender,
            invitation_id="0d8b1f0e-5a4e-4c4f-9d51-6f7f5f0c2a10",
            domain=POLICY.mail_domain,
            footer=FOOTER,
            # the link is the invitee's own; the preview's names no invitation
            link=POLICY.links.for_invitation(placeholder_invitation_id(CONFERENCE.conference_id), CONFERENCE.ends_at),
        )
    )
    assert shown.subject == real.subject
    # The footer is the invitees' one too; only its unsubscribe link names another (made-up) actor.
    assert "/unsubscribe/" in shown.text and "/unsubscribe/" in shown.html
    assert _any_unsubscribe(shown.text) == _any_unsubscribe(real.text.replace("Runder Tisch Frintrop", name))
    assert _any_unsubscribe(shown.html) == _any_unsubscribe(real.html.replace("Runder Tisch Frintrop", name))
    assert "17:00" in shown.text and "Kulturzentrum Borbeck" in shown.html
    # The calendar file differs only in the attendee (and DTSTAMP, the time of rendering).
    assert _without_attendee(shown.calendar) == _without_attendee(real.calendar)
    assert "mailto:beispiel@example.invalid" in _unfolded(shown.calendar)
    assert placeholder_invitation_id(CONFERENCE.conference_id) != placeholder_invitation_id("other")

    with pytest.raises(ConferenceUnknown):
        await handlers.preview_mail("unknown", language, CONTEXT, uow_factory=service.uow, policy=POLICY)


def _any_unsubscribe(text: str) -> str:
    return re.sub(r"/unsubscribe/[A-Za-z0-9._-]+", "/unsubscribe/TOKEN", text)


def _unfolded(calendar: str) -> str:
    return calendar.replace("\r\n ", "").replace("\n ", "")


def _without_attendee(calendar: str) -> list[str]:
    lines = _unfolded(calendar).splitlines()
    return [line for line in lines if not line.startswith(("DTSTAMP", "ATTENDEE"))]


async def test_a_test_mail_is_the_preview_marked_with_a_message_id_of_its_own() -> None:
    service = Notifications()
    await knowing(service, ConferenceScheduled(conference_id=CONFERENCE.conference_id, details=CONFERENCE))
    command = SendTestMail(CONFERENCE.conference_id, "koordination@stadt.example.org", "en")
    with capture_logs() as logs:
        first = await handlers.send_test_mail(
            command, CONTEXT, uow_factory=service.uow, mailer=service.mailer, policy=POLICY, limit=LIMIT
        )
        second = await handlers.send_test_mail(
            command, CONTEXT, uow_factory=service.uow, mailer=service.mailer, policy=POLICY, limit=LIMIT
        )
    assert service.mailer.recipients() == ["koordination@stadt.example.org"] * 2
    assert first != second and first.startswith("<test-") and first.endswith("@essen.example.org>")
    mail = parsed(service.mailer.sent[0])
    assert mail["Message-ID"] == first and mail["To"].addresses[0].addr_spec == "koordination@stadt.example.org"
    shown = await handlers.preview_mail(CONFERENCE.conference_id, "en", CONTEXT, uow_factory=service.uow, policy=POLICY)
    assert mail["Subject"] == "[Test] " + shown.subject
    sent = Preview.of(service.mailer.sent[0])
    # The same mail; the footer's unsubscribe token holds its expiry, to the second, so it may
    # differ between the two (it did, when a second began between them).
    same = [_any_unsubscribe(part) for part in (sent.text, sent.html, shown.text, shown.html)]
    assert same[:2] == same[2:]
    # No invitation's delivery, no event, and the address in no log line.
    assert service.uow.fake_deliveries.rows == {} and service.uow.events == []
    assert [entry["event"] for entry in logs] == ["test_mail_sent", "test_mail_sent"]
    assert "koordination" not in repr(logs)


async def test_test_mails_are_limited_per_conference_and_hour() -> None:
    service = Notifications()
    await knowing(service, ConferenceDrafted(conference_id=CONFERENCE.conference_id, details=CONFERENCE))
    command = SendTestMail(CONFERENCE.conference_id, "koordination@stadt.example.org", "de")

    async def send() -> str:
        return await handlers.send_test_mail(
            command,
            CONTEXT,
            uow_factory=service.uow,
            mailer=service.mailer,
            policy=POLICY,
            limit=LIMIT,
            clock=service.clock,
        )

    for _ in range(LIMIT.per_hour):
        await send()
    with pytest.raises(TooManyTestMails) as refused:
        await send()
    # The clock starts on the hour: the next window opens an hour later.
    assert refused.value.retry_after_seconds == 3600
    assert len(service.mailer.sent) == LIMIT.per_hour
    service.clock.current += timedelta(hours=1)
    await send()
    assert len(service.mailer.sent) == LIMIT.per_hour + 1

    with pytest.raises(ConferenceUnknown):
        await handlers.send_test_mail(
            SendTestMail("unknown", "a@example.org", "de"),
            CONTEXT,
            uow_factory=service.uow,
            mailer=service.mailer,
            policy=POLICY,
            limit=LIMIT,
        )


async def test_a_refused_test_mail_says_why_without_the_address() -> None:
    mailer = FakeMailer({"nobody@example.org": [PermanentMailError("SMTP 550: <nobody@example.org> unknown")]})
    service = Notifications(mailer)
    await knowing(service, ConferenceDrafted(conference_id=CONFERENCE.conference_id, details=CONFERENCE))
    with capture_logs() as logs, pytest.raises(TestMailNotSent) as failed:
        await handlers.send_test_mail(
            SendTestMail(CONFERENCE.conference_id, "nobody@example.org", "de"),
            CONTEXT,
            uow_factory=service.uow,
            mailer=service.mailer,
            policy=POLICY,
            limit=LIMIT,
        )
    assert "550" in str(failed.value) and "nobody@" not in str(failed.value)
    assert "nobody@" not in repr(logs)
