"""Actors as CSV: reading an import file into rows, and writing rows for an export.

The contract:
- ``read(data)`` takes the file's bytes, at most ``MAX_BYTES`` and ``MAX_ROWS`` data rows (else
  ``TooLarge``). UTF-8 (with or without BOM) is tried first; bytes that are not UTF-8 are read as
  Windows-1252, which is what Excel writes in Germany. The delimiter is ``;`` (Excel's German
  default) or ``,``, whichever the header line holds more of. The header names the columns
  (``HEADER``, in any order, case and surrounding spaces ignored); a missing required column or an
  unknown one is ``BadHeader``. Each data row becomes a ``Row``: its line number and its cells as
  the API's field names, with ``districts`` split into codes and ``consent_to_notifications``
  a boolean when it is one of ``YES``/``NO`` (else left as text, for the model to refuse).
  Blank lines are skipped.
- ``write(rows)`` is the other way round, for the export, with every cell that a spreadsheet
  would take for a formula (starting ``= + - @``, tab or CR) prefixed with ``'`` (CSV injection).
- No validation of values here: rows go through the same request model as ``POST /actors``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_BYTES = 1024 * 1024
MAX_ROWS = 2000
HEADER = ("name", "kind", "districts", "email", "language", "consent")
REQUIRED = frozenset({"name", "kind", "districts", "email"})
YES = frozenset({"ja", "j", "yes", "y", "true", "1", "x"})
NO = frozenset({"nein", "n", "no", "false", "0", ""})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DISTRICT_SEPARATORS = re.compile(r"[\s,/|]+")


class TooLarge(Exception):
    """Over ``MAX_BYTES`` or ``MAX_ROWS`` (the message says which)."""


class BadHeader(Exception):
    """The first line is not a header we know (the message says why)."""


@dataclass(frozen=True)
class Row:
    line: int  # in the file, the header being line 1
    values: dict[str, Any] = field(default_factory=dict)


def decode(data: bytes) -> str:
    """UTF-8 (a BOM dropped) if the bytes are UTF-8, else Windows-1252 (Excel's "CSV")."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def delimiter_of(header_line: str) -> str:
    return ";" if header_line.count(";") >= header_line.count(",") else ","


def read(data: bytes) -> list[Row]:
    if len(data) > MAX_BYTES:
        raise TooLarge(f"the file is larger than {MAX_BYTES // 1024} KiB")
    text = decode(data)
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter_of(first_line))
    try:
        header = next(reader)
    except StopIteration:
        raise BadHeader("the file is empty") from None
    columns = [name.strip().lower() for name in header]
    missing = REQUIRED - set(columns)
    unknown = [name for name in columns if name and name not in HEADER]
    if missing or unknown:
        raise BadHeader(
            f"the header must name {', '.join(HEADER)}"
            + (f"; missing: {', '.join(sorted(missing))}" if missing else "")
            + (f"; unknown: {', '.join(unknown[:5])}" if unknown else "")
        )
    rows: list[Row] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) == MAX_ROWS:
            raise TooLarge(f"the file has more than {MAX_ROWS} rows")
        rows.append(Row(reader.line_num, _values(columns, cells)))
    return rows


def _values(columns: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    raw = {name: cell.strip() for name, cell in zip(columns, cells, strict=False) if name}
    values: dict[str, Any] = {k: raw.get(k, "") for k in ("name", "kind", "email")}
    values["districts"] = [code for code in _DISTRICT_SEPARATORS.split(raw.get("districts", "")) if code]
    if raw.get("language"):
        values["language"] = raw["language"].lower()
    consent = raw.get("consent", "").lower()
    values["consent_to_notifications"] = True if consent in YES else False if consent in NO else consent
    return values


def safe_cell(value: object) -> str:
    """The value as a cell no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def write(rows: Iterable[Sequence[object]], header: Sequence[str], delimiter: str = ";") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return out.getvalue()


def template() -> str:
    """The header and one example row, ``;``-separated as Excel in Germany expects."""
    example = ["Runder Tisch Musterviertel", "round_table", "IV", "kontakt@runder-tisch.example.org", "de", "ja"]
    return write([example], HEADER)
