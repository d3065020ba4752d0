"""`quartier privacy export` without services: where the token and the URLs come from, how the
three parts become one document, and the one-line error naming the service that failed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from quartier.common import UNREACHABLE, USAGE, OperatorError
from quartier.privacy_export import Gatherer, bearer_token, export_command, service_urls

URLS = {name: f"http://{name}.test" for name in ("actors", "conferences", "notifications")}
PARTS: dict[str, dict[str, Any]] = {
    "actors": {"format": "quartier-export/1", "actor_id": "a1", "actors": {"registry_entry": {"name": "N"}}},
    "conferences": {"actor_id": "a1", "invitations": [{"id": "i1"}], "truncated": False},
    "notifications": {"actor_id": "a1", "contact": None, "deliveries": [], "truncated": False},
}


def answering(statuses: dict[str, int] | None = None) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        service = request.url.host.split(".")[0]
        assert request.url.raw_path.decode() in ("/actors/a%2F1/export", "/actors/a1/export")
        assert request.headers["authorization"] == "Bearer t0ken"
        return httpx.Response((statuses or {}).get(service, 200), json=PARTS[service])

    return httpx.MockTransport(answer)


def test_urls_come_from_the_flag_then_the_environment_then_make_runs_ports() -> None:
    urls = service_urls(
        {"actors": "http://a:1/", "conferences": None, "notifications": None},
        {"QUARTIER_CONFERENCES_URL": "http://c:2"},
    )
    assert urls["actors"] == "http://a:1" and urls["conferences"] == "http://c:2"
    assert urls["notifications"].startswith("http://127.0.0.1:")


def test_the_token_comes_from_the_flag_then_the_environment_else_it_says_how_to_get_one(tmp_path: Path) -> None:
    assert bearer_token("flag", tmp_path, {"QUARTIER_TOKEN": "env"}) == "flag"
    assert bearer_token(None, tmp_path, {"QUARTIER_TOKEN": "env"}) == "env"
    with pytest.raises(OperatorError, match="QUARTIER_TOKEN") as refused:
        bearer_token(None, tmp_path, {})
    assert refused.value.exit_code == USAGE


def test_the_three_parts_become_one_document_in_one_file(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    said = export_command("a1", out, Gatherer("t0ken", URLS, transport=answering()))
    document = json.loads(out.read_text())
    assert set(document) == {"format", "actor_id", "exported_at", "actors", "conferences", "notifications"}
    assert document["format"] == "quartier-export/1" and document["actor_id"] == "a1"
    assert document["actors"] == PARTS["actors"]["actors"]  # the actors service's own part, unwrapped
    assert document["conferences"] == PARTS["conferences"]
    assert document["notifications"] == PARTS["notifications"]
    assert datetime.fromisoformat(document["exported_at"]).tzinfo == UTC
    assert str(out) in said and "1 invitation(s)" in said
    assert out.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("statuses", "code", "words"),
    [
        ({"conferences": 500}, UNREACHABLE, "conferences at http://conferences.test answered 500"),
        ({"notifications": 403}, USAGE, "notifications refused the token (403)"),
        ({"actors": 404}, USAGE, "actors knows no actor"),
    ],
)
def test_a_failing_service_is_named_and_nothing_is_written(
    tmp_path: Path, statuses: dict[str, int], code: int, words: str
) -> None:
    out = tmp_path / "export.json"
    with pytest.raises(OperatorError) as failed:
        export_command("a1", out, Gatherer("t0ken", URLS, transport=answering(statuses)))
    assert words in str(failed.value) and failed.value.exit_code == code
    assert not out.exists()


def test_an_actor_id_is_one_path_segment(tmp_path: Path) -> None:
    export_command("a/1", tmp_path / "x.json", Gatherer("t0ken", URLS, transport=answering()))
