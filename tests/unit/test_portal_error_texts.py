"""The services' validation errors in the portal's languages: pydantic's error types (and the
import's own codes) in German and English, the service's English ``msg`` for any other type, and
the import API that hands the types over."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from actors import csv_rows
from actors.import_api import ImportOut, check_rows
from portal.api_client import ApiError
from portal.error_texts import error_text
from quartier_shared.auth import Principal
from quartier_shared.web import load_translations

GERMAN = load_translations(Path(str(resources.files("portal"))) / "translations", "de")
assert GERMAN is not None
DE = GERMAN.gettext
EN = str  # English: the msgids themselves


def _error(error_type: str, msg: str = "in English", **ctx: Any) -> dict[str, Any]:
    return {"type": error_type, "loc": ["body", "field"], "msg": msg, "ctx": ctx}


@pytest.mark.parametrize(
    ("error", "german", "english"),
    [
        (_error("missing"), "Dieses Feld ist erforderlich.", "This field is required."),
        (_error("string_too_short", min_length=1), "Mindestens 1 Zeichen.", "At least 1 characters."),
        (_error("string_too_long", max_length=200), "Höchstens 200 Zeichen.", "At most 200 characters."),
        (_error("too_short", min_length=1), "Zu wenige Einträge (mindestens 1).", "Too few entries (at least 1)."),
        (_error("too_long", max_length=9), "Zu viele Einträge (höchstens 9).", "Too many entries (at most 9)."),
        (
            _error("value_error", "value is not a valid email address: An email address must have an @-sign."),
            "Keine gültige E-Mail-Adresse.",
            "Not a valid e-mail address.",
        ),
        (_error("unknown_district", code="XII", known="I, II"), "Unbekannter Bezirk XII.", "Unknown district XII."),
        (
            _error("unknown_kind", kind="zoo", known="other"),
            "Unbekannte Art von Akteur zoo.",
            "Unknown kind of actor zoo.",
        ),
        (
            _error("literal_error", expected="'de' or 'en'"),
            "Keiner der erlaubten Werte: 'de' oder 'en'.",
            "Not one of the allowed values: 'de' or 'en'.",
        ),
        (_error("int_parsing"), "Bitte geben Sie eine ganze Zahl ein.", "Please enter a whole number."),
        (_error("bool_parsing"), "Bitte antworten Sie mit ja oder nein.", "Please answer yes or no."),
        (_error("greater_than", gt=0), "Muss größer als 0 sein.", "Must be greater than 0."),
        (_error("less_than_equal", le=500), "Darf höchstens 500 sein.", "Must be at most 500."),
        (_error("not_within_your_districts"), "Liegt nicht in Ihren Bezirken.", "Not within your districts."),
        (
            _error("duplicate_in_file"),
            "Diese Adresse steht zweimal in der Datei.",
            "This address is in the file twice.",
        ),
    ],
)
def test_common_errors_are_said_in_german_and_english(error: dict[str, Any], german: str, english: str) -> None:
    assert (error_text(error, DE), error_text(error, EN)) == (german, english)


@pytest.mark.parametrize(
    "error",
    [
        _error("some_new_type", "Input is odd"),
        _error("value_error", "Input is odd"),  # not the e-mail address's
        _error("string_too_long", "Input is odd"),  # without its limit
        {"type": "literal_error", "msg": "Input is odd", "ctx": "not a mapping"},
    ],
)
def test_other_errors_keep_the_services_message(error: dict[str, Any]) -> None:
    assert error_text(error, DE) == "Input is odd"
    assert error_text({}, DE) == "Ungültiger Wert."


def test_field_errors_are_said_in_the_language_given() -> None:
    error = ApiError(
        422,
        [
            _error("value_error", "value is not a valid email address: no @") | {"loc": ["body", "email"]},
            _error("unknown_district", code="XII") | {"loc": ["body", "districts", 0]},
            _error("missing") | {"loc": ["body", "email"]},  # the first error of a field wins
        ],
    )
    assert error.field_errors(DE) == {"email": "Keine gültige E-Mail-Adresse.", "districts": "Unbekannter Bezirk XII."}
    assert error.field_errors()["email"] == "Not a valid e-mail address."


def test_the_import_names_each_errors_type() -> None:
    header = "name;kind;districts;email;language;consent\n"
    rows = csv_rows.read(
        (
            header
            + "Verein A;zoo;XII;kein-at;fr;ja\n"
            + "Verein B;other;III;b@example.org;de;ja\n"
            + "Verein C;other;IV;b@example.org;de;ja\n"
        ).encode()
    )
    manager = Principal("manager", frozenset({"quarter_manager"}), frozenset({"IV"}))
    answer = ImportOut(dry_run=True, counts={}, rows=[out for out, _ in check_rows(rows, manager, set())])
    errors = [{e["field"]: (e["type"], e["ctx"]) for e in row["errors"]} for row in answer.model_dump()["rows"]]
    assert errors[0]["kind"] == ("unknown_kind", {"kind": "zoo", "known": errors[0]["kind"][1]["known"]})
    assert errors[0]["districts"] == (
        "unknown_district",
        {"code": "XII", "known": "I, II, III, IV, V, VI, VII, VIII, IX"},
    )
    assert errors[0]["email"][0] == "value_error" and errors[0]["language"] == (
        "literal_error",
        {"expected": "'de' or 'en'"},
    )
    assert errors[1] == {"districts": ("not_within_your_districts", None)}
    assert errors[2] == {"email": ("duplicate_in_file", None)}
    texts = [error_text(e, DE) for e in answer.model_dump()["rows"][0]["errors"]]
    assert "Keine gültige E-Mail-Adresse." in texts and "Unbekannter Bezirk XII." in texts
