"""The conference form: what a coordinator types (local date and times, venue, agenda lines) and
the API's body it becomes, and back (a stored conference as the form's values).

Times are typed in the city's time zone (the catalogue's, Europe/Berlin for Essen) and sent with
that zone's offset at that instant, as the conferences service requires. A date or time that is
not one gives an error at its field here; every other rule is the service's (its 422 ``loc``
names the field, which the form shows the error next to).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData

MAX_FIELD = 500
MAX_AGENDA_LINES = 50


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""


def form_values(form: FormData) -> dict[str, str]:
    """The fields as typed (shown again with the errors)."""
    names = ("district", "audience", "title", "day", "starts", "ends", "venue_name", "venue_address")
    values = {name: text(form, name) for name in names}
    agenda = form.get("agenda")
    values["agenda"] = agenda[: MAX_FIELD * 10] if isinstance(agenda, str) else ""
    return values


def _local(day: str, clock: str, zone: ZoneInfo) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=zone)
    except ValueError:
        return None


def api_body(values: dict[str, str], timezone: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The body of ``POST /conferences`` (or the fields of a ``PATCH``) and the errors found here."""
    zone = ZoneInfo(timezone)
    errors: dict[str, str] = {}
    starts = _local(values["day"], values["starts"], zone)
    ends = _local(values["day"], values["ends"], zone)
    if starts is None:
        errors["starts_at"] = "date and start time needed (YYYY-MM-DD, HH:MM)"
    if ends is None:
        errors["ends_at"] = "end time needed (HH:MM)"
    body: dict[str, Any] = {
        "title": values["title"],
        "venue": {"name": values["venue_name"], "address": values["venue_address"]},
        "agenda": [line.strip() for line in values["agenda"].splitlines() if line.strip()][:MAX_AGENDA_LINES],
    }
    if starts is not None:
        body["starts_at"] = starts.isoformat()
    if ends is not None:
        body["ends_at"] = ends.isoformat()
    return body, errors


def stored_values(conference: dict[str, Any]) -> dict[str, str]:
    """A conference of the API as the form's values, in the city's time zone."""
    zone = ZoneInfo(conference["timezone"])
    starts = datetime.fromisoformat(conference["starts_at"]).astimezone(zone)
    ends = datetime.fromisoformat(conference["ends_at"]).astimezone(zone)
    return {
        "district": conference["district"],
        "audience": conference["audience"],
        "title": conference["title"],
        "day": starts.date().isoformat(),
        "starts": starts.strftime("%H:%M"),
        "ends": ends.strftime("%H:%M"),
        "venue_name": conference["venue"]["name"],
        "venue_address": conference["venue"]["address"],
        "agenda": "\n".join(conference["agenda"]),
    }


# The API's field names (its 422 ``loc``) as the form's: the error stands at the form's field.
FIELD_OF = {"starts_at": "starts", "ends_at": "ends"}


def form_errors(errors: dict[str, str]) -> dict[str, str]:
    return {FIELD_OF.get(field, field): message for field, message in errors.items()}
