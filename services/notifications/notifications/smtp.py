"""Sending mail over a small pool of reused SMTP connections.

Outcomes are sorted for the caller: a 5xx answer is permanent (the invitation fails with the
server's reason); a 4xx answer, a refused connection or a timeout is temporary and is retried
with backoff, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiosmtplib

from quartier_shared.metrics import SMTP_ERRORS
from quartier_shared.retry import Retry

from .mail import OutgoingMail
from .settings import Settings


class PermanentMailError(Exception):
    pass


class TemporaryMailError(Exception):
    pass


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.smtp_connections)
        self._idle: list[aiosmtplib.SMTP] = []
        self._retry = Retry(
            settings.smtp_backoff_seconds,
            cap=300.0,
            attempts=settings.smtp_max_attempts,
            transient=lambda exc: isinstance(exc, TemporaryMailError),
        )

    async def send(self, mail: OutgoingMail) -> None:
        """Send, retrying temporary failures; raises PermanentMailError or, when the attempts are
        used up, TemporaryMailError."""
        try:
            await self._retry.run(lambda: self.send_once(mail), event="smtp_temporary_failure")
        except TemporaryMailError as exc:
            attempts = self.settings.smtp_max_attempts
            raise TemporaryMailError(f"{exc} (gave up after {attempts} attempts)") from exc

    async def send_once(self, mail: OutgoingMail) -> None:
        async with self._slots:
            client = self._idle.pop() if self._idle else self._client()
            try:
                if not client.is_connected:
                    await client.connect()
                # Internationalised addresses need the server's SMTPUTF8; plain ones need nothing.
                options = [] if (mail.sender + mail.recipient).isascii() else ["SMTPUTF8"]
                await client.sendmail(mail.sender, [mail.recipient], mail.data, mail_options=options)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                await _discard(client)
                refused = exc.recipients[0]
                SMTP_ERRORS.labels("refused").inc()
                raise _classify(refused.code, refused.message) from exc
            except aiosmtplib.SMTPResponseException as exc:
                await _discard(client)
                # Refused credentials (at connect, which signs in) stop every mail: their own alert.
                authentication = isinstance(exc, aiosmtplib.SMTPAuthenticationError)
                SMTP_ERRORS.labels(
                    "authentication" if authentication else "permanent" if exc.code >= 500 else "temporary"
                ).inc()
                raise _classify(exc.code, exc.message) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _discard(client)
                SMTP_ERRORS.labels("connection").inc()
                raise TemporaryMailError(f"{type(exc).__name__}: {exc}") from exc
            self._idle.append(client)

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.smtp_timeout_seconds,
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=s.smtp_starttls,
        )

    async def close(self) -> None:
        while self._idle:
            await _discard(self._idle.pop())


def _classify(code: int, message: str) -> Exception:
    text = f"SMTP {code}: {message}"
    return PermanentMailError(text) if 500 <= code < 600 else TemporaryMailError(text)


async def _discard(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing left to close
        if client.is_connected:
            client.close()
