"""What POST /conferences accepts as times: UTC as it is, other offsets only the city's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from conferences.api import ConferenceIn
from tests.helpers import conference_body

SUMMER = f"{datetime.now(UTC).year + 1}-07-02"


@pytest.mark.parametrize(
    ("starts_at", "ends_at"),
    [
        (f"{SUMMER}T15:00:00Z", f"{SUMMER}T18:00:00Z"),
        (f"{SUMMER}T15:00:00+00:00", f"{SUMMER}T18:00:00+00:00"),
        (f"{SUMMER}T17:00:00+02:00", f"{SUMMER}T20:00:00+02:00"),
        (f"{SUMMER}T17:00:00+02:00", f"{SUMMER[:-1]}3T17:00:00+02:00"),  # 24 h exactly
    ],
)
def test_utc_and_the_citys_offset_are_accepted(starts_at: str, ends_at: str) -> None:
    conference = ConferenceIn.model_validate(conference_body(starts_at=starts_at, ends_at=ends_at))
    assert conference.starts_at == datetime.fromisoformat(starts_at)


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "field", "says"),
    [
        (f"{SUMMER}T17:00:00+01:00", f"{SUMMER}T20:00:00+02:00", "starts_at", "+02:00"),
        (f"{SUMMER}T17:00:00+02:00", f"{SUMMER}T20:00:00-05:00", "ends_at", "+02:00"),
        (f"{SUMMER}T17:00:00+02:00", f"{SUMMER[:-1]}3T17:00:01+02:00", "ends_at", "24 hours"),
        (
            (datetime.now(UTC) + timedelta(days=800)).isoformat(),
            (datetime.now(UTC) + timedelta(days=800, hours=2)).isoformat(),
            "starts_at",
            "two years",
        ),
    ],
)
def test_a_foreign_offset_a_far_start_or_a_long_conference_is_refused(
    starts_at: str, ends_at: str, field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        ConferenceIn.model_validate(conference_body(starts_at=starts_at, ends_at=ends_at))
    error = raised.value.errors()[0]
    assert error["loc"] == (field,) and says in error["msg"], error
