"""``chunked`` keeps $in lists short without losing or repeating an id."""

from quartier_shared.embedded_db import chunked


def test_chunks_cover_every_item_once_in_order() -> None:
    ids = (f"id-{i}" for i in range(250))  # any iterable, also a generator
    chunks = list(chunked(ids, 100))
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [i for c in chunks for i in c] == [f"id-{i}" for i in range(250)]
    assert list(chunked([], 100)) == []
