"""The services' validation errors in the visitor's language.

A 422's ``detail`` item (and an import row's error) carries pydantic's error ``type``, its ``ctx``
(plain values such as ``max_length``) and an English ``msg``. ``error_text`` says the common types
in words of the portal's catalogue (``translations/de``); a type it does not know keeps the
service's ``msg``, so an error is never lost, only left in English.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Gettext = Callable[[str], str]


def N_(text: str) -> str:
    """Marks a text for the catalogue; it is translated where it is shown."""
    return text


# type -> the text, and the ctx key whose value it names as %(value)s (or None)
TEXTS: dict[str, tuple[str, str | None]] = {
    "missing": (N_("This field is required."), None),
    "string_too_short": (N_("At least %(value)s characters."), "min_length"),
    "string_too_long": (N_("At most %(value)s characters."), "max_length"),
    "too_short": (N_("Too few entries (at least %(value)s)."), "min_length"),
    "too_long": (N_("Too many entries (at most %(value)s)."), "max_length"),
    "int_parsing": (N_("Please enter a whole number."), None),
    "int_type": (N_("Please enter a whole number."), None),
    "bool_parsing": (N_("Please answer yes or no."), None),
    "bool_type": (N_("Please answer yes or no."), None),
    "greater_than": (N_("Must be greater than %(value)s."), "gt"),
    "greater_than_equal": (N_("Must be at least %(value)s."), "ge"),
    "less_than": (N_("Must be less than %(value)s."), "lt"),
    "less_than_equal": (N_("Must be at most %(value)s."), "le"),
    "unknown_district": (N_("Unknown district %(value)s."), "code"),
    "unknown_kind": (N_("Unknown kind of actor %(value)s."), "kind"),
    "not_within_your_districts": (N_("Not within your districts."), None),
    "duplicate_in_file": (N_("This address is in the file twice."), None),
}
ALLOWED = N_("Not one of the allowed values: %(expected)s.")
OR = N_("or")
EMAIL = N_("Not a valid e-mail address.")
INVALID = N_("Invalid value.")
# pydantic's (email-validator's) message for an address it refuses, a ``value_error``
EMAIL_MSG = "value is not a valid email address"


def error_text(error: Mapping[str, Any], _: Gettext) -> str:
    """``error`` (``type``, ``ctx``, ``msg``, ``loc``) as a sentence of the language of ``_``."""
    kind = str(error.get("type") or "")
    given = error.get("ctx")
    ctx: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    msg = str(error.get("msg") or "")
    try:
        if kind in TEXTS:
            text, key = TEXTS[kind]
            if key is None:
                return _(text)
            if key in ctx:
                return _(text) % {"value": ctx[key]}
        elif kind in ("literal_error", "enum") and "expected" in ctx:
            expected = str(ctx["expected"]).replace(" or ", f" {_(OR)} ")
            return _(ALLOWED) % {"expected": expected}
        elif kind == "value_error" and msg.startswith(EMAIL_MSG):
            return _(EMAIL)
    except (KeyError, TypeError, ValueError):  # a translation that names another placeholder
        pass
    return msg or _(INVALID)
