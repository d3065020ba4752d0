"""Reading an actors CSV (UTF-8 or Excel's Windows-1252 with ``;``) and writing one safely."""

from __future__ import annotations

import pytest

from actors import csv_rows

HEADER = "name;kind;districts;email;language;consent\r\n"


def test_utf8_with_semicolons_and_a_bom() -> None:
    data = (
        "\ufeff" + HEADER + "Müller-Stiftung;welfare_association;IV III;info@mueller.example.org;de;ja\r\n"
    ).encode()
    [row] = csv_rows.read(data)
    assert row.line == 2
    assert row.values == {
        "name": "Müller-Stiftung",
        "kind": "welfare_association",
        "districts": ["IV", "III"],
        "email": "info@mueller.example.org",
        "language": "de",
        "consent_to_notifications": True,
    }


def test_windows_1252_is_detected() -> None:
    data = (HEADER + "Straßenfest Grünhöfe;round_table;I;fest@example.org;;nein\r\n").encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    [row] = csv_rows.read(data)
    assert row.values["name"] == "Straßenfest Grünhöfe"
    assert row.values["consent_to_notifications"] is False
    assert "language" not in row.values  # left out: the model's default (de) applies


def test_commas_header_in_any_order_and_blank_lines() -> None:
    data = b'Email,Name,Kind,Districts\n\na@example.org,"Verein, e.V.",other,"I,II"\n'
    [row] = csv_rows.read(data)
    assert row.line == 3
    assert row.values["name"] == "Verein, e.V." and row.values["districts"] == ["I", "II"]
    assert row.values["consent_to_notifications"] is False  # no consent column: no consent


def test_an_unclear_consent_is_left_for_the_model_to_refuse() -> None:
    [row] = csv_rows.read((HEADER + "A;other;I;a@example.org;de;vielleicht\n").encode())
    assert row.values["consent_to_notifications"] == "vielleicht"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty"),
        (b"name;kind;email\n", "missing: districts"),
        (b"name;kind;districts;email;phone\n", "unknown: phone"),
    ],
)
def test_a_header_we_do_not_know(data: bytes, expected: str) -> None:
    with pytest.raises(csv_rows.BadHeader, match=expected):
        csv_rows.read(data)


def test_bounds() -> None:
    with pytest.raises(csv_rows.TooLarge, match="KiB"):
        csv_rows.read(b"x" * (csv_rows.MAX_BYTES + 1))
    many = HEADER + "A;other;I;a@example.org;de;ja\n" * (csv_rows.MAX_ROWS + 1)
    with pytest.raises(csv_rows.TooLarge, match="rows"):
        csv_rows.read(many.encode())
    assert len(csv_rows.read((HEADER + "A;other;I;a@example.org;de;ja\n" * csv_rows.MAX_ROWS).encode())) == 2000


def test_written_cells_never_start_a_formula() -> None:
    text = csv_rows.write([["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "plain"]], ["a", "b", "c", "d", "e", "f"])
    assert text.splitlines()[1] == "'=HYPERLINK(1);'+1;'-2;'@SUM(A1);'\tx;plain"


def test_the_template_reads_back() -> None:
    [row] = csv_rows.read(csv_rows.template().encode())
    assert row.values["kind"] == "round_table" and row.values["consent_to_notifications"] is True
