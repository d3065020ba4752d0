"""The personal-link tokens: signed by one key, verified by its public half, nothing personal in them."""

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from quartier_shared import links

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ENDS = NOW + timedelta(days=10)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_signed_link_verifies_and_names_only_the_invitation(key: Ed25519PrivateKey) -> None:
    token = links.sign("inv-1", ENDS, key)
    claims = links.verify(token, key.public_key(), now=NOW)
    assert claims == links.LinkClaims(subject_id="inv-1", expires_at=ENDS)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(payload) == {"inv", "aud", "exp"}


def test_expired_is_told_apart_from_invalid(key: Ed25519PrivateKey) -> None:
    token = links.sign("inv-1", ENDS, key)
    with pytest.raises(links.ExpiredLink):
        links.verify(token, key.public_key(), now=ENDS)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),  # signature
        lambda t: (
            t.split(".")[0]
            + "."
            + base64.urlsafe_b64encode(b'{"inv":"inv-2","aud":"quartier-answer","exp":9999999999}').decode().rstrip("=")
            + "."
            + t.split(".")[2]
        ),
        lambda t: "not-a-token",
        lambda t: "x" * 5000,
        lambda t: "",
    ],
)
def test_tampered_or_garbage_is_invalid(key: Ed25519PrivateKey, tamper: Callable[[str], str]) -> None:
    with pytest.raises(links.InvalidLink):
        links.verify(tamper(links.sign("inv-1", ENDS, key)), key.public_key(), now=NOW)


def test_another_key_or_purpose_is_invalid(key: Ed25519PrivateKey) -> None:
    token = links.sign("inv-1", ENDS, key)
    with pytest.raises(links.InvalidLink):
        links.verify(token, Ed25519PrivateKey.generate().public_key(), now=NOW)
    with pytest.raises(links.InvalidLink):
        links.verify(token, key.public_key(), purpose="quartier-unsubscribe", now=NOW)


def test_unsigned_token_is_invalid(key: Ed25519PrivateKey) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps({"inv": "inv-1", "aud": links.ANSWER, "exp": 9999999999}).encode())
    with pytest.raises(links.InvalidLink):
        links.verify(f"{header}.{body.decode().rstrip('=')}.", key.public_key(), now=NOW)


def test_keys_load_from_a_file_or_from_pem_text(tmp_path: Path) -> None:
    private_path, public_path = links.generate_pair(tmp_path)
    assert private_path.stat().st_mode & 0o077 == 0
    private = links.load_private_key(str(private_path))
    public = links.load_public_key(public_path.read_text())
    assert links.verify(links.sign("inv-1", ENDS, private), public, now=NOW).invitation_id == "inv-1"
    assert links.generate_pair(tmp_path) == (private_path, public_path)  # kept, not replaced


def test_an_unsubscribe_link_names_only_the_actor_and_lasts_a_year(key: Ed25519PrivateKey) -> None:
    expires = NOW + links.UNSUBSCRIBE_VALIDITY
    token = links.sign("actor-1", expires, key, purpose=links.UNSUBSCRIBE)
    claims = links.verify(token, key.public_key(), purpose=links.UNSUBSCRIBE, now=NOW + timedelta(days=364))
    assert claims.actor_id == "actor-1"
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(payload) == {"act", "aud", "exp"}
    with pytest.raises(links.ExpiredLink):
        links.verify(token, key.public_key(), purpose=links.UNSUBSCRIBE, now=expires)


def test_answer_and_unsubscribe_tokens_are_not_interchangeable(key: Ed25519PrivateKey) -> None:
    answer = links.sign("inv-1", ENDS, key)
    unsubscribe = links.sign("actor-1", ENDS, key, purpose=links.UNSUBSCRIBE)
    with pytest.raises(links.InvalidLink):
        links.verify(answer, key.public_key(), purpose=links.UNSUBSCRIBE, now=NOW)
    with pytest.raises(links.InvalidLink):
        links.verify(unsubscribe, key.public_key(), now=NOW)
