"""Documents derived from a domain dataclass: every field there and back, with their types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from quartier_shared.events import Venue
from quartier_shared.mongo import DocumentMapper


class Colour(StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Thing:
    id: str
    tags: tuple[str, ...]
    colour: Colour
    venue: Venue
    at: datetime
    note: str | None = None


def test_a_dataclass_goes_to_a_document_and_back_unchanged() -> None:
    thing = Thing("t1", ("a", "b"), Colour.RED, Venue(name="Saal", address="Weg 1"), datetime(2027, 1, 2, tzinfo=UTC))
    mapper = DocumentMapper(Thing)
    doc = mapper.to_document(thing)
    assert doc["_id"] == "t1" and "id" not in doc
    assert doc["venue"] == {"name": "Saal", "address": "Weg 1"} and doc["colour"] == "red"
    assert mapper.from_document(doc) == thing


def test_fields_a_document_lacks_take_their_defaults_and_unknown_ones_are_ignored() -> None:
    doc = {"_id": "t2", "tags": ["x"], "colour": "red", "venue": {"name": "S", "address": "A"}, "at": datetime.now(UTC)}
    thing = DocumentMapper(Thing).from_document({**doc, "legacy_field": 1})
    assert thing.note is None and thing.tags == ("x",)
