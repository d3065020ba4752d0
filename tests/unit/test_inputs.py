"""The shared input types: free text without control or invisible characters."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from quartier_shared.inputs import SafeText, StrictBool, unsafe_character


class Model(BaseModel):
    text: Annotated[str, SafeText(20)]
    flag: StrictBool = False


@pytest.mark.parametrize(
    "char",
    [
        "\r",
        "\n",
        "\t",
        "\x00",
        "\x1b",
        "\x7f",
        "\x85",
        "\x9b",
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\u202a",
        "\u202e",
        "\u2066",
        "\u2069",
        "\u200e",
        "\u061c",
        "\u2028",
        "\u2029",
        "\u00ad",
    ],
)
def test_control_and_invisible_characters_are_refused(char: str) -> None:
    assert unsafe_character(f"ab{char}cd") == f"U+{ord(char):04X}"
    with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}"):
        Model(text=f"ab{char}cd")


def test_ordinary_text_passes_stripped_and_bounded() -> None:
    assert Model(text="  Ümlaut & Co. — Ağ  ").text == "Ümlaut & Co. — Ağ"
    assert unsafe_character("Straße 1, 45355 Essen (Hof) «Ωμέγα» 東京") is None
    for bad in ["   ", "", "x" * 21]:
        with pytest.raises(ValidationError):
            Model(text=bad)


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "false"])
def test_booleans_are_strict(value: object) -> None:
    with pytest.raises(ValidationError):
        Model(text="a", flag=value)
