"""The SMTP sender against real SMTP servers (aiosmtpd, in this process): transport security
(SMTP_TLS: STARTTLS, implicit TLS) with a certificate of a CA of the test's own (SMTP_CA_FILE),
refused credentials pausing sending instead of failing mails, and which answers are throttling."""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY
from pydantic import ValidationError

from notifications.mail import OutgoingMail
from notifications.settings import Settings
from notifications.smtp import MailAuthError, PermanentMailError, SmtpSender, TemporaryMailError, tls_options
from quartier.embedded import free_port

PASSWORD = "richtig"


class Inbox:
    """Keeps each mail's recipients and whether it came over TLS; counts login attempts."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bool]] = []
        self.logins = 0
        self.password = PASSWORD
        self.answers: dict[str, str] = {}  # RCPT answers by address, instead of 250

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.answers:
            return self.answers[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        encrypted = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        self.mails.append((list(envelope.rcpt_tos), encrypted))
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        self.logins += 1
        ok = isinstance(data, LoginPassword) and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A CA's PEM file (for SMTP_CA_FILE) and the server context of a certificate it signed for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Quartier Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.example.org")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "relay.pem", folder / "relay.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@contextlib.contextmanager
def serving(inbox: Inbox, **options: Any) -> Iterator[int]:
    """A server delivering to ``inbox``, checking logins with it; yields its port."""
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        ready_timeout=10,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
        **options,
    )
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def settings(port: int, **overrides: Any) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_max_attempts=1, **overrides)


def mail(to: str = "verein@example.org") -> OutgoingMail:
    data = f"From: integration@essen.example.org\r\nTo: {to}\r\nSubject: Test\r\n\r\nHallo\r\n".encode()
    return OutgoingMail(sender="integration@essen.example.org", recipient=to, message_id="<t@example.org>", data=data)


def auth_failing() -> float | None:
    return REGISTRY.get_sample_value("quartier_smtp_auth_failing")


def test_tls_follows_smtp_tls_and_the_older_smtp_starttls() -> None:
    assert tls_options(Settings()) == {"use_tls": False, "start_tls": None}  # upgrade when offered
    assert tls_options(Settings(smtp_username="essen")) == {"use_tls": False, "start_tls": True}  # insist
    assert tls_options(Settings(smtp_starttls=True)) == {"use_tls": False, "start_tls": True}
    assert tls_options(Settings(smtp_starttls=False)) == {"use_tls": False, "start_tls": False}  # as before
    assert tls_options(Settings(smtp_tls="implicit")) == {"use_tls": True, "start_tls": False}
    assert tls_options(Settings(smtp_tls="none", smtp_username="essen")) == {"use_tls": False, "start_tls": False}


def test_credentials_over_a_plain_connection_refuse_to_start_unless_chosen_explicitly() -> None:
    with pytest.raises(ValidationError, match="the password would travel in clear"):
        Settings(smtp_username="essen", smtp_password="geheim", smtp_starttls=False)
    Settings(smtp_username="essen", smtp_password="geheim", smtp_tls="none")


async def test_credentials_go_only_over_starttls_verified_by_the_given_ca(
    certificate: tuple[Path, ssl.SSLContext],
) -> None:
    ca_file, context = certificate
    inbox, plain = Inbox(), Inbox()
    with serving(inbox, tls_context=context) as port:
        sender = SmtpSender(settings(port, smtp_username="essen", smtp_password=PASSWORD, smtp_ca_file=str(ca_file)))
        await sender.send(mail())
        await sender.close()
    # A server that offers no STARTTLS gets neither the password nor the mail.
    with serving(plain) as port:
        sender = SmtpSender(settings(port, smtp_username="essen", smtp_password=PASSWORD))
        with pytest.raises(TemporaryMailError):
            await sender.send(mail())

    assert inbox.mails == [(["verein@example.org"], True)] and inbox.logins == 1
    assert plain.mails == [] and plain.logins == 0


async def test_implicit_tls_speaks_tls_from_the_first_byte(certificate: tuple[Path, ssl.SSLContext]) -> None:
    ca_file, context = certificate
    inbox = Inbox()
    with serving(inbox, ssl_context=context) as port:
        sender = SmtpSender(settings(port, smtp_tls="implicit", smtp_ca_file=str(ca_file)))
        await sender.send(mail())
        await sender.close()

    assert inbox.mails == [(["verein@example.org"], True)]


async def test_a_certificate_of_an_unknown_ca_gets_no_mail(certificate: tuple[Path, ssl.SSLContext]) -> None:
    _, context = certificate
    inbox = Inbox()
    with serving(inbox, ssl_context=context) as port:
        sender = SmtpSender(settings(port, smtp_tls="implicit"))  # the system's trust store
        with pytest.raises(TemporaryMailError):
            await sender.send(mail())

    assert inbox.mails == []


async def test_refused_credentials_pause_sending_and_a_login_that_works_again_resumes_it(
    certificate: tuple[Path, ssl.SSLContext],
) -> None:
    ca_file, context = certificate
    inbox = Inbox()
    inbox.password = "geändert"  # the relay's password was changed, ours not yet
    with serving(inbox, tls_context=context) as port:
        credentials = {"smtp_username": "essen", "smtp_password": PASSWORD, "smtp_ca_file": str(ca_file)}
        paused = SmtpSender(settings(port, **credentials))
        with pytest.raises(MailAuthError):
            await paused.send(mail())
        logins = inbox.logins  # one per mechanism the server offers
        for _ in range(3):
            with pytest.raises(MailAuthError) as refused:
                await paused.send(mail())
            assert refused.value.retry_in > 200  # about five minutes
        assert inbox.logins == logins  # no login while paused, not one per mail (lockouts)
        assert auth_failing() == 1

        # Without the pause (the next attempt after it), once the credentials are right again:
        retrying = SmtpSender(settings(port, **credentials), auth_pause_seconds=0)
        with pytest.raises(MailAuthError):
            await retrying.send(mail())
        inbox.password = PASSWORD
        await retrying.send(mail())
        await retrying.close()

    assert inbox.mails == [(["verein@example.org"], True)]
    assert auth_failing() == 0


async def test_a_quota_or_rate_answered_with_5xx_is_throttling_and_an_unknown_mailbox_is_not() -> None:
    inbox = Inbox()
    inbox.answers = {
        "quota@example.org": "550 5.4.5 Daily user sending quota exceeded",
        "rate@example.org": "554 5.7.0 Message rate limit exceeded, please slow down",
        "unknown@example.org": "550 5.1.1 User unknown",
        "busy@example.org": "452 4.5.3 Too many recipients",
    }
    with serving(inbox) as port:
        sender = SmtpSender(settings(port))
        for address in ("quota@example.org", "rate@example.org", "busy@example.org"):
            with pytest.raises(TemporaryMailError) as deferred:
                await sender.send(mail(address))
            assert not isinstance(deferred.value, MailAuthError)
        with pytest.raises(PermanentMailError, match=r"SMTP 550: 5\.1\.1 User unknown"):
            await sender.send(mail("unknown@example.org"))
        await sender.close()

    assert inbox.mails == []
