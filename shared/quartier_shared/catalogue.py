"""The district catalogue: reference data every service may read (it is data, not a service).

Essen's 9 districts are the default seed; another city points ``DISTRICT_CATALOGUE`` at its own
file of the same shape.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class District(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    quarters: list[str]


class ActorKind(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    de: str
    note: str = ""


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True)

    city: str
    timezone: str
    districts: list[District]
    actor_kinds: list[ActorKind]

    @property
    def district_codes(self) -> frozenset[str]:
        return frozenset(d.code for d in self.districts)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(k.kind for k in self.actor_kinds)

    def district(self, code: str) -> District | None:
        return next((d for d in self.districts if d.code == code), None)


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    """The catalogue named by ``DISTRICT_CATALOGUE``, or the packaged Essen seed."""
    path = os.environ.get("DISTRICT_CATALOGUE")
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("quartier_shared").joinpath("essen-districts.json").read_text("utf-8")
    return Catalogue.model_validate(json.loads(text))


def _known_district(code: str) -> str:
    code = code.strip().upper()
    if code not in load_catalogue().district_codes:
        known = ", ".join(d.code for d in load_catalogue().districts)
        raise PydanticCustomError(
            "unknown_district",
            "unknown district '{code}'; known districts: {known}",
            {"code": _echo(code), "known": known},
        )
    return code


def _known_kind(kind: str) -> str:
    if kind not in load_catalogue().kinds:
        known = ", ".join(sorted(load_catalogue().kinds))
        raise PydanticCustomError(
            "unknown_kind", "unknown actor kind '{kind}'; known kinds: {known}", {"kind": _echo(kind), "known": known}
        )
    return kind


def _echo(value: str, limit: int = 40) -> str:
    """What an error repeats of a value that is not known: enough to find it, not a whole page
    (the 422 echoes the input once already)."""
    return value if len(value) <= limit else value[:limit] + "…"


# Types for request models: a district code or actor kind that the catalogue knows.
DistrictCode = Annotated[str, AfterValidator(_known_district)]
ActorKindName = Annotated[str, AfterValidator(_known_kind)]
