"""The dashboard's arithmetic without I/O: answer rates per district and per actor kind, and who
answered neither of their last two invitations."""

from __future__ import annotations

from typing import Any

from portal.dashboard import summarise
from quartier_shared.catalogue import load_catalogue

ANSWER = {"answer": "accepted", "attendees": 1}


def conference(starts_at: str, answers: dict[str, bool]) -> dict[str, Any]:
    return {
        "starts_at": starts_at,
        "invitations": [{"actor_id": a, "answer": ANSWER if answered else None} for a, answered in answers.items()],
    }


def test_rates_per_district_and_kind_and_the_silent() -> None:
    catalogue = load_catalogue()
    iv, iii = (next(d for d in catalogue.districts if d.code == code) for code in ("IV", "III"))
    actors = {
        "caritas": {"name": "Caritas Borbeck", "kind": "welfare_association", "districts": ["IV"]},
        "tisch": {"name": "Runder Tisch Frintrop", "kind": "round_table", "districts": ["IV", "III"]},
        "verein": {"name": "Bürgerverein Dellwig", "kind": "round_table", "districts": ["III"]},
    }
    conferences = {
        "IV": [
            conference("2027-03-04T16:00:00+00:00", {"caritas": True, "tisch": False}),
            conference("2027-05-04T16:00:00+00:00", {"caritas": False, "tisch": False}),
        ],
        "III": [conference("2027-04-04T16:00:00+00:00", {"tisch": True, "verein": False})],
    }
    summary = summarise([iii, iv], conferences, actors)
    assert [(r.label, r.invited, r.answered, r.percent) for r in summary.districts] == [
        ("III", 2, 1, 50),
        ("IV", 4, 1, 25),
    ]
    assert [(r.label, r.invited, r.answered) for r in summary.kinds] == [
        ("round_table", 4, 1),
        ("welfare_association", 2, 1),
    ]
    # tisch answered in III (April), then not in May: one of the last two answered
    # caritas answered in March, not in May: the same; verein has one invitation only
    assert summary.silent == []
    conferences["IV"].append(conference("2027-06-04T16:00:00+00:00", {"caritas": False}))
    assert [a["name"] for a in summarise([iii, iv], conferences, actors).silent] == ["Caritas Borbeck"]
    assert summarise([iv], {}, actors).districts[0].percent is None
