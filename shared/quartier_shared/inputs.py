"""Types for request models that refuse hostile input (a 422 names the field).

``Annotated[str, SafeText(max_length)]`` is the one type for free text that ends up in mails,
calendars and answers: names, titles, venues, agenda items. It refuses control characters (C0,
DEL, C1), line and paragraph separators, and invisible format characters (bidi overrides and
isolates, zero-width characters, the byte-order mark, soft hyphens), which could forge lines in a
mail or hide what a text says. Surrounding whitespace is stripped; an empty text is refused.
``StrictBool`` takes only JSON true and false.
"""

from __future__ import annotations

import unicodedata

from pydantic import AfterValidator, StrictBool

__all__ = ["SafeText", "StrictBool", "unsafe_character"]

# Cc: C0, DEL and C1 controls; Cf: format characters (bidi, zero-width, BOM, soft hyphen);
# Zl, Zp: the line and paragraph separators U+2028 and U+2029; Cs: lone surrogates.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def unsafe_character(text: str) -> str | None:
    """The first character of ``text`` that free text may not hold, as ``U+XXXX``, or None."""
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def SafeText(max_length: int) -> AfterValidator:
    """Free text without control or invisible characters, stripped, not empty, and at most
    ``max_length`` characters long."""

    def check(value: str) -> str:
        found = unsafe_character(value)
        if found is not None:
            raise ValueError(
                f"contains the character {found}; control characters, line breaks, bidi controls "
                "and invisible characters are not allowed"
            )
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if len(value) > max_length:
            raise ValueError(f"must have at most {max_length} characters, not {len(value)}")
        return value

    return AfterValidator(check)
