"""quartier_smtp_errors_total: each failed SMTP attempt counted by its kind, so that refused
credentials (which stop every mail) have an alert of their own (deploy/observability/alerts.yml)."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pytest
from prometheus_client import REGISTRY

from notifications.mail import OutgoingMail
from notifications.settings import Settings
from notifications.smtp import MailAuthError, PermanentMailError, SmtpSender, TemporaryMailError


class FailingClient:
    """Stands in for aiosmtplib.SMTP: connecting (which signs in) or sending raises ``error``."""

    def __init__(self, error: Exception, at: str) -> None:
        self.error, self.at, self.is_connected = error, at, False

    async def connect(self) -> None:
        if self.at == "connect":
            raise self.error
        self.is_connected = True

    async def sendmail(self, *args: Any, **kwargs: Any) -> None:
        raise self.error

    def close(self) -> None:
        self.is_connected = False


def counted(kind: str) -> float:
    return REGISTRY.get_sample_value("quartier_smtp_errors_total", {"kind": kind}) or 0.0


@pytest.mark.parametrize(
    ("error", "at", "kind", "raised"),
    [
        (
            aiosmtplib.SMTPAuthenticationError(535, "5.7.8 credentials invalid"),
            "connect",
            "authentication",
            MailAuthError,  # sending pauses: no mail fails for it (test_deferrals)
        ),
        (aiosmtplib.SMTPResponseException(554, "5.7.1 rejected"), "send", "permanent", PermanentMailError),
        (aiosmtplib.SMTPResponseException(451, "4.3.0 try later"), "send", "temporary", TemporaryMailError),
        (aiosmtplib.SMTPConnectError("no route"), "connect", "connection", TemporaryMailError),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@example.org")]),
            "send",
            "refused",
            PermanentMailError,
        ),
    ],
)
async def test_each_failed_attempt_is_counted_by_its_kind(
    error: Exception, at: str, kind: str, raised: type[Exception]
) -> None:
    sender = SmtpSender(Settings(smtp_host="mail.example.org"))
    sender._client = lambda: FailingClient(error, at)  # type: ignore[method-assign,assignment,return-value]
    before = {k: counted(k) for k in ("authentication", "refused", "permanent", "temporary", "connection")}
    mail = OutgoingMail("quartier@example.org", "a@example.org", "<m@example.org>", b"Subject: x\r\n\r\nx")
    with pytest.raises(raised):
        await sender.send_once(mail)
    after = {k: counted(k) for k in before}
    assert {k: after[k] - before[k] for k in before} == {k: 1.0 if k == kind else 0.0 for k in before}
