"""`quartier certs make`: a private CA and one server certificate per host, for TLS on the links
inside the compose network (Kafka, MongoDB), which no public CA would certify (the names are the
compose service names, `kafka`, `mongodb`).

What it writes into ``--out`` (the compose file's `certs` volume), PEM unless named otherwise:

- ``ca.pem``: the CA certificate, which every client trusts (public, 0644);
- ``HOST.crt``: the server certificate, SAN = HOST (public, 0644);
- ``HOST.pem``: the unencrypted private key followed by the certificate, the one file
  ``mongod --tlsCertificateKeyFile`` takes (0600);
- ``HOST.p12`` and ``HOST.p12-password``: the same key and certificate as a PKCS#12 keystore and its
  password (0600 both), which Kafka reads (``ssl.keystore.type=PKCS12``). Not a PEM keystore: a
  Kafka PEM keystore file must hold an encrypted key, and PKCS#12 is the JVM's own format. The
  password protects nothing the file system does not already: Kafka insists on one.

The CA's private key, ``ca-key.pem`` (0600), goes into ``--ca-dir`` (default ``--out``): the compose
file keeps it in a volume of its own that only `certs` mounts, so that no server holds it.

Idempotent: a file set that is complete, verifies against ``ca.pem``, names its host and is valid for
longer than ``RENEW_BEFORE`` is kept byte for byte; otherwise that host's files are made again (new
key). A CA that expires within ``RENEW_BEFORE`` is replaced, and with it every server certificate.
A city's own CA: put its ``ca.pem`` and the hosts' files into the volume; without ``ca-key.pem`` the
command keeps valid files and refuses (exit 2) to replace one it cannot sign, saying which.

``--owner HOST=UID[:GID]`` hands the key files of HOST to the user its server runs as (Kafka's
image: 1000, MongoDB's: 999), so that each key is readable by its server and no other user; it
needs root with the CHOWN capability, as the compose file's `certs` service has.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .common import USAGE, OperatorError

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept at most; short enough that renewal is routine
RENEW_BEFORE = dt.timedelta(days=30)
DEFAULT_HOSTS = ("kafka", "mongodb")
# A DNS label per host (the compose service names): it becomes a file name, so nothing else.
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PUBLIC = 0o644
_PRIVATE = 0o600


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def parse_hosts(value: str) -> tuple[str, ...]:
    hosts = tuple(dict.fromkeys(h.strip().lower() for h in value.split(",") if h.strip()))
    bad = [h for h in hosts if not _HOST.match(h)]
    if not hosts or bad:
        raise OperatorError(f"--hosts: host names such as kafka,mongodb, not {value[:60]!r}", USAGE)
    return hosts


def parse_owners(values: Iterable[str], hosts: Iterable[str]) -> dict[str, Owner]:
    owners: dict[str, Owner] = {}
    known = set(hosts)
    for value in values:
        host, _, ids = value.partition("=")
        uid, _, gid = ids.partition(":")
        if host not in known or not uid.isdigit() or (gid and not gid.isdigit()):
            raise OperatorError(f"--owner: HOST=UID[:GID] for one of --hosts, not {value[:60]!r}", USAGE)
        owners[host] = Owner(int(uid), int(gid or uid))
    return owners


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, with ``mode`` from the first byte: a key never exists with wider permissions."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)  # the umask may have narrowed it
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8: what mongod and Python read; the file's mode protects it."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _fresh(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() > RENEW_BEFORE


def _load_ca(out: Path, ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | None] | None:
    """The CA if its certificate is fresh (and its key, when present, belongs to it); else None."""
    try:
        cert = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    except (OSError, ValueError):
        return None
    if not _fresh(cert):
        return None
    try:
        key = serialization.load_pem_private_key((ca_dir / "ca-key.pem").read_bytes(), password=None)
    except FileNotFoundError:
        return cert, None  # a city's own CA: its key stays with the city
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _make_ca(out: Path, ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Quartier internal CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # certificates and CRLs only
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca_dir.mkdir(parents=True, exist_ok=True)
    _write(ca_dir / "ca-key.pem", _key_pem(key), _PRIVATE)
    _write(out / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), _PUBLIC)
    return cert, key


def _host_is_valid(out: Path, host: str, ca: x509.Certificate) -> bool:
    """The host's files are complete, agree with each other, name the host and verify against ``ca``."""
    try:
        crt = x509.load_pem_x509_certificate((out / f"{host}.crt").read_bytes())
        combined = (out / f"{host}.pem").read_bytes()
        key = serialization.load_pem_private_key(combined, password=None)
        in_pem = x509.load_pem_x509_certificate(combined[combined.index(b"-----BEGIN CERTIFICATE-----") :])
        password = (out / f"{host}.p12-password").read_bytes().strip()
        p12_key, p12_cert, _ = pkcs12.load_key_and_certificates((out / f"{host}.p12").read_bytes(), password)
        crt.verify_directly_issued_by(ca)
        names = crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return (
        in_pem == crt
        and p12_cert == crt
        and p12_key is not None
        and key.public_key() == crt.public_key()
        and p12_key.public_key() == crt.public_key()
        and host in names.get_values_for_type(x509.DNSName)
        and _fresh(crt)
    )


def _make_host(out: Path, host: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )  # signatures (ECDHE) and key agreement
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )  # client too: a MongoDB replica set member connects to the others with its own certificate
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = _key_pem(key)
    password = secrets.token_hex(24).encode()
    p12 = pkcs12.serialize_key_and_certificates(
        host.encode(), key, cert, [ca], serialization.BestAvailableEncryption(password)
    )
    # The keys first, the certificate last: a reader that sees the new .crt finds its key already there.
    _write(out / f"{host}.pem", key_pem + cert_pem, _PRIVATE)
    _write(out / f"{host}.p12-password", password + b"\n", _PRIVATE)
    _write(out / f"{host}.p12", p12, _PRIVATE)
    _write(out / f"{host}.crt", cert_pem, _PUBLIC)


def make(
    out: Path, hosts: Iterable[str], *, ca_dir: Path | None = None, owners: Mapping[str, Owner] | None = None
) -> list[str]:
    """Bring ``out`` to a fresh CA and fresh certificates for ``hosts``; what was (re)made, one line each."""
    ca_dir = out if ca_dir is None else ca_dir
    out.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    ca_key: ec.EllipticCurvePrivateKey | None
    loaded = _load_ca(out, ca_dir)
    if loaded is None:
        if (out / "ca.pem").exists() and not (ca_dir / "ca-key.pem").exists():
            raise OperatorError(
                f"{out / 'ca.pem'} is expired or unreadable and there is no {ca_dir / 'ca-key.pem'} to make a "
                "new one with: put your CA's new certificate there, or remove ca.pem to let this command make a CA",
                USAGE,
            )
        ca, ca_key = _make_ca(out, ca_dir)
        done.append("ca: made (valid until " + ca.not_valid_after_utc.date().isoformat() + ")")
    else:
        ca, ca_key = loaded
    for host in hosts:
        if _host_is_valid(out, host, ca):
            continue
        if ca_key is None:
            raise OperatorError(
                f"{host}: its certificate is missing, expiring or not signed by {out / 'ca.pem'}, and without "
                f"{ca_dir / 'ca-key.pem'} this command cannot sign a new one: put the files your CA issued there",
                USAGE,
            )
        _make_host(out, host, ca, ca_key)
        done.append(f"{host}: certificate made (SAN {host})")
    for host, owner in (owners or {}).items():
        for name in (f"{host}.pem", f"{host}.p12", f"{host}.p12-password"):
            os.chown(out / name, owner.uid, owner.gid)
    return done


def make_command(out: Path, hosts: str, ca_dir: Path | None, owners: list[str]) -> str:
    wanted = parse_hosts(hosts)
    chosen = parse_owners(owners, wanted)
    try:
        done = make(out, wanted, ca_dir=ca_dir, owners=chosen)
    except PermissionError as exc:
        raise OperatorError(f"{exc.filename}: {exc.strerror} (--owner needs root with CHOWN)", USAGE) from exc
    if not done:
        return f"{out}: CA and certificates for {', '.join(wanted)} valid; nothing changed"
    return "\n".join(done)
