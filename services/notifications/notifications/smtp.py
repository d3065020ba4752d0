"""Sending mail over a small pool of reused SMTP connections.

Outcomes are sorted for the caller: a 5xx answer is permanent (the invitation fails with the
server's reason), unless its text says it is throttling (a sending quota, a rate limit); a 4xx
answer, a refused connection or a timeout is temporary and is retried with backoff, a bounded
number of times, then raised as ``TemporaryMailError`` (the caller defers the mail: ``deferrals``).

Refused credentials (530, 534, 535 or aiosmtplib's SMTPAuthenticationError) are nobody's mail at
fault: ``MailAuthError``, a temporary error that is not retried here. Sending pauses for
``AUTH_PAUSE_SECONDS``: meanwhile every mail raises it at once, without a connection, so the
server (and the account's lockout counter) sees one login attempt per pause, not one per mail.
``quartier_smtp_auth_failing`` is 1 and an error is logged until a mail goes through again.

Transport security (``tls_options``, SMTP_TLS): "starttls" upgrades a connection when the server
offers it and insists when credentials are set (a password never goes out in clear);
"implicit" speaks TLS from the first byte (port 465); "none" never encrypts. Certificates are
verified against the system's trust store, or SMTP_CA_FILE.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TypedDict

import aiosmtplib

from quartier_shared.logging import get_logger
from quartier_shared.metrics import SMTP_AUTH_FAILING, SMTP_ERRORS
from quartier_shared.retry import Retry

from .mail import OutgoingMail
from .settings import Settings

log = get_logger(__name__)
AUTH_PAUSE_SECONDS = 300.0
AUTH_CODES = (530, 534, 535)  # authentication required, mechanism too weak, credentials invalid


class PermanentMailError(Exception):
    pass


class TemporaryMailError(Exception):
    pass


class MailAuthError(TemporaryMailError):
    """The server refused our credentials; ``retry_in``: seconds until sending tries again."""

    def __init__(self, text: str, retry_in: float) -> None:
        super().__init__(text)
        self.retry_in = retry_in


class TlsOptions(TypedDict):
    use_tls: bool
    start_tls: bool | None  # None: upgrade when the server offers STARTTLS


def tls_options(settings: Settings) -> TlsOptions:
    """aiosmtplib's TLS arguments for SMTP_TLS (see the module docstring)."""
    mode = settings.smtp_tls_mode
    if mode == "implicit":
        return {"use_tls": True, "start_tls": False}
    if mode == "none":
        return {"use_tls": False, "start_tls": False}
    # SMTP_STARTTLS=true has always meant "insist"; so do credentials.
    insist = bool(settings.smtp_starttls) or settings.smtp_username is not None
    return {"use_tls": False, "start_tls": True if insist else None}


class SmtpSender:
    def __init__(self, settings: Settings, auth_pause_seconds: float = AUTH_PAUSE_SECONDS) -> None:
        self.settings = settings
        self.auth_pause_seconds = auth_pause_seconds
        self._slots = asyncio.Semaphore(settings.smtp_connections)
        self._idle: list[aiosmtplib.SMTP] = []
        self._retry = Retry(
            settings.smtp_backoff_seconds,
            cap=300.0,
            attempts=settings.smtp_max_attempts,
            transient=lambda exc: isinstance(exc, TemporaryMailError) and not isinstance(exc, MailAuthError),
        )
        self._paused_until = 0.0  # time.monotonic() until which refused credentials pause sending
        self._auth_failing = False  # until a mail goes through again

    async def send(self, mail: OutgoingMail) -> None:
        """Send, retrying temporary failures; raises PermanentMailError, MailAuthError or, when
        the attempts are used up, TemporaryMailError."""
        try:
            await self._retry.run(lambda: self.send_once(mail), event="smtp_temporary_failure")
        except MailAuthError:
            raise
        except TemporaryMailError as exc:
            attempts = self.settings.smtp_max_attempts
            raise TemporaryMailError(f"{exc} (gave up after {attempts} attempts)") from exc

    async def send_once(self, mail: OutgoingMail) -> None:
        self._check_paused()
        async with self._slots:
            self._check_paused()  # another mail may have met refused credentials meanwhile
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
                # Refused credentials (at connect, which signs in) stop every mail: their own alert,
                # and sending pauses instead of failing each mail (see _pause).
                authentication = isinstance(exc, aiosmtplib.SMTPAuthenticationError) or exc.code in AUTH_CODES
                SMTP_ERRORS.labels(
                    "authentication" if authentication else "permanent" if exc.code >= 500 else "temporary"
                ).inc()
                if authentication:
                    raise self._pause(exc.code) from exc
                raise _classify(exc.code, exc.message) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _discard(client)
                SMTP_ERRORS.labels("connection").inc()
                raise TemporaryMailError(f"{type(exc).__name__}: {exc}") from exc
            self._idle.append(client)
        if self._auth_failing:
            self._auth_failing = False
            SMTP_AUTH_FAILING.set(0)
            log.info("smtp_authentication_restored")

    def _check_paused(self) -> None:
        left = self._paused_until - time.monotonic()
        if left > 0:
            raise MailAuthError("not sent yet: the SMTP server refused the credentials", left)

    def _pause(self, code: int) -> MailAuthError:
        self._paused_until = time.monotonic() + self.auth_pause_seconds
        self._auth_failing = True
        SMTP_AUTH_FAILING.set(1)
        # The server's text is left out: it may repeat the login name.
        pause = self.auth_pause_seconds
        log.error("smtp_authentication_failed", code=code, paused_s=pause, setting="SMTP_USERNAME")
        return MailAuthError(f"not sent yet: the SMTP server refused the credentials (SMTP {code})", pause)

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.smtp_timeout_seconds,
            username=s.smtp_username,
            password=s.smtp_password,
            cert_bundle=s.smtp_ca_file,
            **tls_options(s),
        )

    async def close(self) -> None:
        while self._idle:
            await _discard(self._idle.pop())


def _classify(code: int, message: str) -> Exception:
    text = f"SMTP {code}: {message}"
    if 500 <= code < 600 and not _THROTTLING.search(message):
        return PermanentMailError(text)
    return TemporaryMailError(text)


# Some relays say "slow down" with a 5xx code: Microsoft 365's daily sending quota (5.4.5,
# SubmissionQuotaExceeded), others' rate limits. That is the sender's pace, not the recipient's
# address: deferred like a 4xx, so it goes out once the quota or the rate allows.
_THROTTLING = re.compile(
    r"throttl|rate limit|too many (messages|connections)|sending quota|SubmissionQuotaExceeded|\b5\.4\.5\b", re.I
)


async def _discard(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing left to close
        if client.is_connected:
            client.close()
