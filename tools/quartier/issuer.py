"""A local token issuer for `make run` and the tests: an Ed25519 signing key in a folder of its
own (``var/auth/``), its JWKS served over HTTP on 127.0.0.1, and tokens signed with it
(`quartier token`).

The issuer URL is ``http://127.0.0.1:<port>/local-<id>``, where the id is random and kept with the
key: a token minted for one `make run` names an issuer no other stack (and no production
deployment) accepts.

``python -m quartier.issuer --dir DIR --port P`` serves the JWKS of the key in DIR (what the
embedded stack starts), and the sign-in of the staff portal (``login.py``: the authorization-code
flow with PKCE and a page of demo users); ``serve`` does the same on a thread (the tests).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .login import CodeFlow, LoginError

KEY_FILE = "signing-key.pem"
ID_FILE = "issuer-id"
AUDIENCE = "quartier"
# Names in var/stack.env besides the services' AUTH_ISSUER and AUTH_JWKS_URL (services ignore it).
KEY_VARIABLE = "QUARTIER_AUTH_KEY"


def ensure_key(folder: Path, kind: str = "ed25519") -> tuple[Path, str]:
    """The signing key and issuer id in ``folder``, made on first use (the key readable by us only).
    ``kind``: "ed25519" (EdDSA), or "rsa" (RS256, as most identity providers sign)."""
    folder.mkdir(parents=True, exist_ok=True)
    key_path, id_path = folder / KEY_FILE, folder / ID_FILE
    if not key_path.exists():
        key = Ed25519PrivateKey.generate() if kind == "ed25519" else rsa.generate_private_key(65537, 2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_path.touch(mode=0o600)
        key_path.write_bytes(pem)
    if not id_path.exists():
        id_path.write_text(secrets.token_hex(8))
    return key_path, id_path.read_text().strip()


SigningKey = Ed25519PrivateKey | rsa.RSAPrivateKey


def _private_key(key_path: Path) -> SigningKey:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path} holds neither an Ed25519 nor an RSA key")
    return key


def _algorithm(key: SigningKey) -> str:
    return "EdDSA" if isinstance(key, Ed25519PrivateKey) else "RS256"


def jwks(key_path: Path) -> dict[str, Any]:
    """The public half of the key as a JWK set; its key id is the key's RFC 7638 thumbprint."""
    key = _private_key(key_path)
    if isinstance(key, Ed25519PrivateKey):
        public = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"keys": [{**public, "kid": kid_of(public), "use": "sig", "alg": _algorithm(key)}]}


def kid_of(public: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK (its required members, sorted, without spaces)."""
    members = ("crv", "kty", "x") if public["kty"] == "OKP" else ("e", "kty", "n")
    canonical = json.dumps({k: public[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class LocalIssuer:
    """What it takes to mint tokens that a stack configured with ``env()`` accepts."""

    key_path: Path
    issuer: str
    audience: str = AUDIENCE

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks.json"

    @classmethod
    def at(cls, folder: Path, port: int, kind: str = "ed25519") -> LocalIssuer:
        key_path, issuer_id = ensure_key(folder, kind)
        return cls(key_path, f"http://127.0.0.1:{port}/local-{issuer_id}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalIssuer | None:
        """From ``env()`` (var/stack.env); None when it names no local key."""
        if not env.get(KEY_VARIABLE) or not env.get("AUTH_ISSUER"):
            return None
        return cls(Path(env[KEY_VARIABLE]), env["AUTH_ISSUER"], env.get("AUTH_AUDIENCE") or AUDIENCE)

    def env(self) -> dict[str, str]:
        return {
            "AUTH_ISSUER": self.issuer,
            "AUTH_JWKS_URL": self.jwks_url,
            "AUTH_AUDIENCE": self.audience,
            KEY_VARIABLE: str(self.key_path),
        }

    def token(
        self,
        roles: Iterable[str],
        districts: Iterable[str] = (),
        *,
        subject: str | None = None,
        minutes: float = 60,
        **claims: Any,
    ) -> str:
        """A signed access token; ``claims`` add to or override the usual ones (exp, nbf, aud...)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject or str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + int(minutes * 60),
            "roles": list(roles),
            "districts": list(districts),
            **claims,
        }
        return self.sign(payload)

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        """``claims`` signed as they are, with the key id in the header (plus ``headers``)."""
        key = _private_key(self.key_path)
        kid = jwks(self.key_path)["keys"][0]["kid"]
        return jwt.encode(dict(claims), key, algorithm=_algorithm(key), headers={"kid": kid, **(headers or {})})

    def headers(self, roles: Iterable[str], districts: Iterable[str] = (), **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(roles, districts, **kwargs)}"}


MAX_FORM_BYTES = 8192


def _handler(key_path: Path, issuer_path: str, flow: CodeFlow) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == f"{issuer_path}/jwks.json":
                self._json(jwks(key_path))  # read on every request: a new key file is a key rotation
            elif path == f"{issuer_path}/.well-known/openid-configuration":
                self._json(flow.discovery())
            elif path == f"{issuer_path}/authorize":
                try:
                    page = flow.login_page(dict(parse_qsl(query)))
                except LoginError as refused:
                    self._json({"error": "invalid_request", "error_description": str(refused)}, 400)
                    return
                self._send(200, "text/html; charset=utf-8", page.encode())
            elif path == "/health":
                self._json({"status": "ok"})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_FORM_BYTES:
                self.send_error(413)
                return
            form = dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
            try:
                if self.path == f"{issuer_path}/authorize":
                    self.send_response(302)
                    self.send_header("Location", flow.authorize(form))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == f"{issuer_path}/token":
                    self._json(flow.token(form))
                else:
                    self.send_error(404)
            except LoginError as refused:
                self._json({"error": "invalid_grant", "error_description": str(refused)}, 400)

        def _json(self, document: dict[str, Any], status: int = 200) -> None:
            self._send(status, "application/json", json.dumps(document).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def server(folder: Path, port: int, kind: str = "ed25519") -> tuple[ThreadingHTTPServer, LocalIssuer]:
    issuer = LocalIssuer.at(folder, port, kind)
    path = "/" + issuer.issuer.split("/", 3)[3]
    flow = CodeFlow(issuer.issuer, issuer.token)
    return ThreadingHTTPServer(("127.0.0.1", port), _handler(issuer.key_path, path, flow)), issuer


def serve(folder: Path, port: int, kind: str = "ed25519") -> tuple[LocalIssuer, ThreadingHTTPServer]:
    """The JWKS served on a daemon thread (stop it with ``shutdown()``), and the issuer."""
    http, issuer = server(folder, port, kind)
    threading.Thread(target=http.serve_forever, name="jwks", daemon=True).start()
    return issuer, http


def main() -> None:
    parser = argparse.ArgumentParser(description="serve the JWKS of the local token issuer")
    parser.add_argument("--dir", type=Path, required=True, help="folder of the signing key (made if missing)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    http, _ = server(args.dir, args.port)
    http.serve_forever()


if __name__ == "__main__":
    main()
