"""The portal's conference form without I/O: local date and times become the API's times with the
city's offset at that instant (winter +01:00, summer +02:00), agenda lines a list, and back."""

from __future__ import annotations

from portal.conference_form import api_body, form_errors, stored_values

ZONE = "Europe/Berlin"
TYPED = {
    "district": "IV",
    "audience": "district",
    "title": "Integrationskonferenz Borbeck",
    "day": "2027-03-04",
    "starts": "17:00",
    "ends": "20:00",
    "venue_name": "Kulturzentrum Borbeck",
    "venue_address": "Musterstraße 1, 45355 Essen",
    "agenda": "Begrüßung\r\n\r\n  Arbeitsgruppen  \n",
}


def test_local_times_get_the_offset_of_their_instant() -> None:
    body, errors = api_body(TYPED, ZONE)
    assert errors == {}
    assert (body["starts_at"], body["ends_at"]) == ("2027-03-04T17:00:00+01:00", "2027-03-04T20:00:00+01:00")
    assert body["agenda"] == ["Begrüßung", "Arbeitsgruppen"]
    assert body["venue"] == {"name": "Kulturzentrum Borbeck", "address": "Musterstraße 1, 45355 Essen"}
    summer, _ = api_body({**TYPED, "day": "2027-07-01"}, ZONE)
    assert summer["starts_at"] == "2027-07-01T17:00:00+02:00"


def test_a_date_or_time_that_is_none_is_an_error_at_its_field() -> None:
    body, errors = api_body({**TYPED, "day": "4.3.2027", "ends": ""}, ZONE)
    assert set(errors) == {"starts_at", "ends_at"} and "starts_at" not in body
    assert set(form_errors(errors)) == {"starts", "ends"}


def test_a_stored_conference_fills_the_form_in_local_time() -> None:
    body, _ = api_body(TYPED, ZONE)
    stored = {**body, "district": "IV", "audience": "district", "timezone": ZONE}
    stored["starts_at"], stored["ends_at"] = "2027-03-04T16:00:00Z", "2027-03-04T19:00:00Z"
    values = stored_values(stored)
    assert (values["day"], values["starts"], values["ends"]) == ("2027-03-04", "17:00", "20:00")
    assert api_body(values, ZONE)[0] == body  # unchanged: the change form sends nothing of it
