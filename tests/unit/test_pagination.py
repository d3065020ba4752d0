"""The cursor of paginated lists: opaque, round-trips every sort value, refuses what is not ours."""

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from quartier_shared.pagination import PageRequest, decode_cursor, encode_cursor, page_of

AT = datetime(2027, 5, 4, 9, 30, 12, 345678, tzinfo=UTC)


@pytest.mark.parametrize("position", [(AT, "a-1"), ("invitation:x", "invitation:x")])
def test_cursors_round_trip(position: tuple[datetime | str, str]) -> None:
    assert decode_cursor(encode_cursor(*position)) == position


@pytest.mark.parametrize("cursor", ["", "%%%", "bm90IGpzb24", "WzEsMiwzXQ", "WyJ0IiwieCIsImEiXQ", "W10"])
def test_a_cursor_that_is_not_ours_is_a_422_naming_it(cursor: str) -> None:
    with pytest.raises(HTTPException) as refused:
        decode_cursor(cursor)
    assert refused.value.status_code == 422
    detail: list[dict[str, object]] = refused.value.detail  # type: ignore[assignment]
    assert detail[0]["loc"] == ["query", "cursor"]


def test_a_page_announces_the_next_only_when_more_was_found() -> None:
    request = PageRequest(limit=2)
    position = lambda n: (str(n), str(n))  # noqa: E731
    full = page_of(["1", "2", "3"], request, position)
    assert full.items == ["1", "2"] and decode_cursor(full.next_cursor or "") == ("2", "2")
    assert page_of(["1", "2"], request, position).next_cursor is None
    assert page_of([], request, position).next_cursor is None


def test_the_next_page_starts_after_the_last_position() -> None:
    after = PageRequest(after=(AT, "a-1")).query("created_at")
    assert after == {"$or": [{"created_at": {"$gt": AT}}, {"created_at": AT, "_id": {"$gt": "a-1"}}]}
    assert PageRequest(after=("d", "d")).query("_id") == {"_id": {"$gt": "d"}}
    assert PageRequest().query("created_at") == {}
