"""The invitation mail of a conference before anyone gets it: the preview and the test mail.

Both are rendered by ``mail.render_invitation``, the function that renders every real invitation,
so whatever changes there (wording, the personal link) shows here too. Only the invitee differs:
a placeholder organisation ("Beispiel-Organisation" / "Example organisation") and a made-up
invitation id (derived from the conference's id), which no invitation has, so a personal link in a
preview or a test mail cannot answer for anyone.

- ``Preview``: the mail as an invitee would get it, taken apart: subject, plain text, HTML and the
  calendar file, read back from the very bytes that would go over SMTP.
- ``rendered_test_mail``: that mail to a given address, with "[Test] " before its subject and a Message-ID
  of its own (a fresh one each time), so no mail system takes it for an invitation.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Final

from quartier_shared.events import ConferenceDetails, Language

from .mail import OutgoingMail, Recipient, message_id, render_invitation
from .sending import SendingPolicy

PLACEHOLDER_NAME: Final[dict[Language, str]] = {"de": "Beispiel-Organisation", "en": "Example organisation"}
# Reserved for examples (RFC 2606), so a preview's calendar names no one's real address.
PLACEHOLDER_EMAIL: Final = "beispiel@example.invalid"
TEST_SUBJECT_PREFIX: Final = "[Test] "
TEST_MAIL_KIND: Final = "test"  # the left part of a test mail's Message-ID
_PREVIEW_NAMESPACE: Final = uuid.UUID("0f3c9a51-5e7d-4b8a-9d6e-2c4b7a1e8f93")


def placeholder_invitation_id(conference_id: str) -> str:
    """An invitation id no invitation has (invitations are named in another namespace)."""
    return str(uuid.uuid5(_PREVIEW_NAMESPACE, f"preview:{conference_id}"))


def placeholder_actor_id(conference_id: str) -> str:
    """An actor id no actor has (actor ids are random UUIDs, this one is derived)."""
    return str(uuid.uuid5(_PREVIEW_NAMESPACE, f"preview-actor:{conference_id}"))


def sample(conference: ConferenceDetails, language: Language, address: str, policy: SendingPolicy) -> OutgoingMail:
    """The invitation as the placeholder invitee at ``address`` would get it."""
    invitation_id = placeholder_invitation_id(conference.conference_id)
    return render_invitation(
        conference=conference,
        recipient=Recipient(name=PLACEHOLDER_NAME[language], email=address, language=language),
        sender=policy.sender,
        invitation_id=invitation_id,
        domain=policy.mail_domain,
        # Signed as every link is, for an invitation that does not exist: the answer page says so.
        link=policy.links.for_invitation(invitation_id, conference.ends_at),
        # The footer as every invitee gets it, its unsubscribe link naming an actor that does not
        # exist (the actors service ignores a request for it).
        footer=policy.footer(
            placeholder_actor_id(conference.conference_id), conference.district_name, datetime.now(UTC)
        ),
    )


@dataclass(frozen=True)
class Preview:
    subject: str
    text: str
    html: str
    calendar: str  # the .ics attachment, as text

    @classmethod
    def of(cls, mail: OutgoingMail) -> Preview:
        """The parts of a rendered mail, as a mail program reads them."""
        message = _parsed(mail.data)
        plain, html = message.get_body(("plain",)), message.get_body(("html",))
        calendar = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
        assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
        assert isinstance(calendar, EmailMessage)
        return cls(
            subject=str(message["Subject"]),
            text=plain.get_content(),
            html=html.get_content(),
            calendar=calendar.get_content(),
        )


def preview(conference: ConferenceDetails, language: Language, policy: SendingPolicy) -> Preview:
    return Preview.of(sample(conference, language, PLACEHOLDER_EMAIL, policy))


def rendered_test_mail(
    conference: ConferenceDetails, language: Language, address: str, policy: SendingPolicy
) -> OutgoingMail:
    """The sample to ``address``, marked as a test, with a Message-ID of its own."""
    mail = sample(conference, language, address, policy)
    message = _parsed(mail.data)
    own_id = message_id(str(uuid.uuid4()), TEST_MAIL_KIND, policy.mail_domain)
    message.replace_header("Subject", TEST_SUBJECT_PREFIX + str(message["Subject"]))
    message.replace_header("Message-ID", own_id)
    # The bodies are written back as they were parsed (the same quoted-printable text); only the
    # two headers are new. An internationalised address needs SMTPUTF8, as render_invitation says.
    policy_out = email.policy.SMTP if address.isascii() else email.policy.SMTPUTF8
    data = message.as_bytes(policy=policy_out)
    return OutgoingMail(sender=mail.sender, recipient=address, message_id=own_id, data=data)


def _parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    return message
