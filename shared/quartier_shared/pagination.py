"""List endpoints in pages: ``limit`` and an opaque ``cursor`` in; a JSON list and an RFC 8288
``Link: <...>; rel="next"`` header out.

The contract:
- The body stays a plain JSON list, as it was before lists had pages, so a caller that ignores the
  header reads the first page (``DEFAULT_LIMIT`` items) exactly as before. ``limit`` is 1 to
  ``MAX_LIMIT``; the ``next`` link is there only when another item follows.
- The order is stable: by a sort field, then by ``_id``, and one compound index serves both. A page
  starts strictly after the last item of the page before (keyset, not skip: an item added while a
  caller pages shifts nothing, and the thousandth page costs what the first does).
- The cursor is opaque to callers but not secret: base64url of JSON ``[sort value, id]``. What a
  caller may see is decided by the query's filter (a quarter manager's districts are part of it,
  never filtered after the page was read, which would shorten pages and hide the next link), so a
  forged cursor only moves where the caller's own list starts. A cursor that is not one of ours
  answers 422 naming it.

How a repository uses it: add ``PageRequest.query(field)`` to its own filter, sort by
``PageRequest.sort(field)``, and read the documents with ``PageRequest.read(cursor, field)``; the
endpoint calls ``page_of`` and ``announce_next``. The query starts at the last position (``$gte``)
and ``read`` skips what is not after it, rather than one ``$or`` of "later, or as late with a
greater id", which the embedded database answers by scanning the collection (``embedded_db``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, HTTPException, Query, Request, Response, status
from pymongo import ASCENDING
from pymongo.asynchronous.cursor import AsyncCursor

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 512  # ours are well under 200 characters

T = TypeVar("T")
SortValue = datetime | str
Document = dict[str, Any]


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    after: tuple[SortValue, str] | None = None  # (sort value, _id) of the last item already seen

    def query(self, field: str) -> dict[str, Any]:
        """The filter that starts the page at ``after`` (``read`` drops ``after`` itself and its
        equals with a smaller id); empty for the first page."""
        if self.after is None:
            return {}
        value, last_id = self.after
        return {"_id": {"$gt": last_id}} if field == "_id" else {field: {"$gte": value}}

    async def read(self, cursor: AsyncCursor[Document], field: str) -> list[Document]:
        """``fetch`` documents of ``cursor`` (sorted by ``sort(field)``) that lie after ``after``."""
        found: list[Document] = []
        async for doc in cursor:
            if self.after is None or (doc[field], doc["_id"]) > self.after:
                found.append(doc)
                if len(found) == self.fetch:
                    break
        await cursor.close()
        return found

    @staticmethod
    def sort(field: str) -> list[tuple[str, int]]:
        return [(field, ASCENDING)] if field == "_id" else [(field, ASCENDING), ("_id", ASCENDING)]

    @property
    def fetch(self) -> int:
        """How many to read: one more than the page, to know whether another page follows."""
        return self.limit + 1


FIRST_PAGE = PageRequest()


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def page_of(found: Sequence[T], request: PageRequest, position: Callable[[T], tuple[SortValue, str]]) -> Page[T]:
    """The page in ``found`` (read with ``request.fetch``) and the cursor of the next one, if any."""
    items = list(found[: request.limit])
    more = len(found) > request.limit
    return Page(items, encode_cursor(*position(items[-1])) if more and items else None)


def encode_cursor(value: SortValue, last_id: str) -> str:
    typed = ["t", value.isoformat()] if isinstance(value, datetime) else ["s", value]
    return base64.urlsafe_b64encode(json.dumps([*typed, last_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[SortValue, str]:
    try:
        kind, value, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(value, str) and isinstance(last_id, str) and kind in ("t", "s")):
            raise ValueError(kind)
        return (datetime.fromisoformat(value) if kind == "t" else value), last_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": ["query", "cursor"], "msg": "not a cursor of this list", "type": "value_error"}],
        ) from None


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description='from the `Link: <…>; rel="next"` header of the page before'),
    ] = None,
) -> PageRequest:
    """The FastAPI dependency of every paginated list: ``page: PageRequest = Depends(page_request)``."""
    return PageRequest(limit, decode_cursor(cursor) if cursor else None)


PAGE = Depends(page_request)


def announce_next(response: Response, request: Request, page: Page[Any], limit: int) -> None:
    """``Link: <this URL with the next cursor>; rel="next"`` when another page follows."""
    if page.next_cursor is not None:
        url = request.url.include_query_params(cursor=page.next_cursor, limit=limit)
        response.headers["Link"] = f'<{url}>; rel="next"'
