"""The cursor of paginated lists: opaque, round-trips every sort value, refuses what is not ours."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

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
    assert after == {"created_at": {"$gte": AT}}
    assert PageRequest(after=("d", "d")).query("_id") == {"_id": {"$gt": "d"}}
    assert PageRequest().query("created_at") == {}


class _Cursor:
    """A sorted MongoDB cursor, as far as ``PageRequest.read`` uses one."""

    def __init__(self, docs: list[dict[str, object]]) -> None:
        self.docs, self.closed = docs, False

    def __aiter__(self) -> AsyncIterator[dict[str, object]]:
        async def each() -> AsyncIterator[dict[str, object]]:
            for doc in self.docs:
                yield doc

        return each()

    async def close(self) -> None:
        self.closed = True


async def test_read_skips_the_last_position_and_its_equals_with_smaller_ids() -> None:
    # What {"at": {"$gte": AT}} sorted by (at, _id) finds after the position (AT, "b").
    later = AT.replace(second=13)
    cursor = _Cursor([{"at": AT, "_id": i} for i in "abc"] + [{"at": later, "_id": "a"}])
    found = await PageRequest(limit=1, after=(AT, "b")).read(cast(Any, cursor), "at")
    assert found == [{"at": AT, "_id": "c"}, {"at": later, "_id": "a"}] and cursor.closed
