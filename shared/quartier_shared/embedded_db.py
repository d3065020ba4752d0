"""Tuning that exists only for the embedded database (SecantusDB), gathered here so it is not
mistaken for a MongoDB requirement. Each item costs MongoDB itself little or nothing.

- ``IN_LIST_SIZE`` / ``chunked``: SecantusDB compares each document with every element of an
  ``$in`` list, so one query over 500 ids costs 25 times one over 100. Queries by many ids send
  them in lists of at most 100; to MongoDB that is a few more round trips.
- No top-level ``$or``: SecantusDB scans the whole collection for one, so the outbox relay and the
  delivery claim send two queries (or updates) instead of one with ``$or``.
- ``URI_OPTIONS``: a single embedded server is addressed directly, and without retryable writes
  (with them its inserts fall from about 1,450/s to 155/s after 11,000 writes). Production URIs
  name the replica set instead and keep MongoDB's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

IN_LIST_SIZE = 100
URI_OPTIONS = "directConnection=true&retryWrites=false"


def uri(port: int, host: str = "127.0.0.1") -> str:
    """The MongoDB URI of an embedded SecantusDB server."""
    return f"mongodb://{host}:{port}/?{URI_OPTIONS}"


def chunked(items: Iterable[T], size: int = IN_LIST_SIZE) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``, for ``$in`` queries."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
