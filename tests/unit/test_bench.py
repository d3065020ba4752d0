"""The benchmark's arithmetic and judgement, without running it: the relay pace's limit (checked
against the notifications service's own pace), the POST probe, and the rows, targets and page
built from fabricated records, including results saved before the new figures existed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from bench import report
from bench.cluster import BenchError
from bench.pipeline import percentile
from bench.post_probe import PostProbe
from bench.relay import (
    check_limit,
    is_within,
    mails_by_recipient,
    pace_limit_seconds,
    pace_offset_seconds,
    seconds_to_next_minute,
)
from notifications.rate_limit import MongoPace
from quartier_shared.services import SERVICES

# --- the pace's limit ---------------------------------------------------------------------------


def test_the_limit_of_the_issues_scenario_is_one_full_minute_and_399_slots_of_the_next() -> None:
    assert pace_offset_seconds(1_000, 600) == pytest.approx(60 + 399 * 54 / 600)  # 95.91 s
    assert pace_offset_seconds(150, 120) == pytest.approx(60 + 29 * 54 / 120)  # 73.05 s


def test_the_first_mail_of_each_minute_goes_at_its_start_and_the_last_6_s_before_its_end() -> None:
    assert pace_offset_seconds(1, 600) == 0
    assert pace_offset_seconds(600, 600) == pytest.approx(54 * 599 / 600)
    assert pace_offset_seconds(601, 600) == 60
    assert pace_offset_seconds(1_201, 600) == 120


def test_the_limit_counts_from_the_post() -> None:
    assert pace_limit_seconds(1_000, 600, post_offset_seconds=0.25) == pytest.approx(95.91 - 0.25)


class FakePaceCollection:
    """What MongoPace asks of its collection: one document per minute, counted with $inc."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def insert_one(self, doc: dict[str, Any]) -> None:
        self.docs.setdefault(doc["_id"], dict(doc))

    async def find_one_and_update(self, query: dict[str, Any], update: dict[str, Any], **_: Any) -> dict[str, Any]:
        doc = self.docs[query["_id"]]
        doc["count"] += update["$inc"]["count"]
        return dict(doc)


class FakeDatabase:
    def __init__(self) -> None:
        self.collection = FakePaceCollection()

    def __getitem__(self, _name: str) -> FakePaceCollection:
        return self.collection


@pytest.mark.parametrize(("n", "rate"), [(150, 120), (1_000, 600)])
async def test_the_benchmarks_limit_is_the_slot_the_services_pace_gives_each_mail(n: int, rate: int) -> None:
    """If notifications.rate_limit changes its slots, the benchmark's limit must change with it."""
    pace = MongoPace(cast(Any, FakeDatabase()), rate)
    minute = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    for k in range(1, n + 1):
        slot = await pace.slot(minute)  # every mail ready at once: the pace alone decides
        assert (slot - minute).total_seconds() == pytest.approx(pace_offset_seconds(k, rate)), k


def test_the_post_waits_until_just_after_the_next_clock_minute() -> None:
    assert seconds_to_next_minute(1_800_000_000.0) == pytest.approx(60.05)  # on a boundary: the next one
    assert seconds_to_next_minute(1_800_000_059.99) == pytest.approx(0.06)
    assert (1_800_000_030.0 + seconds_to_next_minute(1_800_000_030.0)) % 60 == pytest.approx(0.05)


def test_a_scenario_too_short_for_the_pace_to_set_its_time_is_refused() -> None:
    check_limit(1_000, 600)
    check_limit(150, 120)
    with pytest.raises(ValueError, match="too short"):
        check_limit(100, 600)  # 8.9 s


def test_within_means_on_either_side_of_the_limit() -> None:
    assert is_within(1.049, 0.05)
    assert is_within(0.951, 0.05)
    assert not is_within(1.051, 0.05)
    assert not is_within(0.94, 0.05)  # mails went before the pace allowed them


def test_the_sink_is_counted_by_recipient(tmp_path: Path) -> None:
    for i, to in enumerate(
        ["Initiative A <a@initiative.example.org>", "b@initiative.example.org", "A@initiative.example.org"]
    ):
        (tmp_path / f"{i:06d}-x.eml").write_bytes(f"To: {to}\r\nSubject: Einladung\r\n\r\nText\r\n".encode())
    assert mails_by_recipient(tmp_path) == {"a@initiative.example.org": 2, "b@initiative.example.org": 1}


def test_nearest_rank_percentile() -> None:
    hundred = [float(v) for v in range(100, 0, -1)]
    assert percentile(hundred, 99) == 99
    assert percentile(hundred, 50) == 50
    assert percentile([float(v) for v in range(1, 51)], 99) == 50  # fewer than 100: the highest


# --- the POST probe -------------------------------------------------------------------------------


def test_the_probe_posts_until_its_bound_and_returns_each_latency() -> None:
    posted: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        return httpx.Response(201, json={"id": "c"})

    body = {"district": "IX"}
    transport = httpx.MockTransport(answer)
    probe = PostProbe("http://conferences.test", {"Authorization": "Bearer t"}, body, 0, 3, transport).start()
    assert probe.ended(timeout=30)
    latencies = probe.stop()
    assert len(latencies) == 3 and all(ms >= 0 for ms in latencies)
    assert [r.url.path for r in posted] == ["/conferences"] * 3
    assert all(r.headers["Authorization"] == "Bearer t" for r in posted)


def test_a_probe_post_that_is_not_created_fails_the_run() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(503))
    probe = PostProbe("http://conferences.test", {}, {"district": "IX"}, 0, 3, transport).start()
    assert probe.ended(timeout=30)  # the first answer ends it
    with pytest.raises(BenchError, match="503"):
        probe.stop()
    assert probe.latencies_ms == []


# --- rows, targets and the page from fabricated records -------------------------------------------


def pipeline_record(run: int = 1, n: int = 10_000, instances: int = 1, **figures: Any) -> dict[str, Any]:
    """One run of the unlimited scenario as bench.run records it (figures invented)."""
    record: dict[str, Any] = {
        "run": run,
        "n": n,
        "instances": instances,
        "setup_seconds": 100.0,
        "pipeline_seconds": 40.0,
        "invitations_per_second": 250.0,
        "post_conference_ms": 20.0,
        "post_conference_ms_each": [19.0, 20.0, 25.0],
        "post_during_ms_p50": 12.0,
        "post_during_ms_p99": 40.0,
        "post_during_ms_each": [12.0] * 79 + [40.0],
        "latency_ms_p50": 20_000.0,
        "latency_ms_p95": 38_000.0,
        "latency_ms_p99": 39_000.0,
        "latency_ms_max": 40_000.0,
        "confirm_seconds": 1.0,
        "republished_sent_events": 0,
        "duplicate_sent_events": 0,
        "cpu_seconds": {"conferences": 10.0, "notifications": 30.0, "other": 1.0},
        "load_average_1m": 0.5,
        "mails_received": n,
        "floor": {
            "kafka_seconds": 1.0,
            "mongodb_seconds": 2.0,
            "smtp_seconds": 17.0,
            "message_bytes": 976,
            "mail_bytes": 7_826,
            "smtp_connections": 4,
            "cpu_seconds": {"other": 0.1},
        },
        "floor_seconds": 20.0,
        "ratio": 2.0,
        "peak_rss_mb": dict.fromkeys(SERVICES, 120.0),
        "peak_rss_mb_each": {**dict.fromkeys(SERVICES, 120.0), "kafka": 50.0, "mongodb": 300.0, "smtp": 40.0},
    }
    record.update(figures)
    return record


def relay_record(run: int = 1, n: int = 1_000, rate: int = 600, **figures: Any) -> dict[str, Any]:
    """One run of the relay-limited scenario as bench.run records it (figures invented)."""
    record: dict[str, Any] = {
        "run": run,
        "startup_seconds": 6.0,
        "n": n,
        "rate_per_minute": rate,
        "setup_seconds": 10.0,
        "post_offset_seconds": 0.06,
        "limit_seconds": 95.85,
        "pipeline_seconds": 96.5,
        "ratio_to_limit": 1.0068,
        "invitation_counts": {"sent": n, "pending": 0, "failed": 0, "total": n},
        "republished_sent_events": 0,
        "duplicate_sent_events": 0,
        "cpu_seconds": {"notifications": 9.0, "other": 0.5},
        "load_average_1m": 0.4,
        "mails_received": n,
        "invitees_mailed": n,
        "invitees_mailed_twice": 0,
    }
    record.update(figures)
    return record


def judged(records: list[dict[str, Any]], relay: list[dict[str, Any]]) -> dict[str, tuple[float | None, bool | None]]:
    found = report.targets(report.summarise(records), report.summarise_relay(relay))
    return {t["target"].split(" (")[0].split(":")[0]: (t["value"], t["met"]) for t in found}


def test_every_target_met() -> None:
    found = judged([pipeline_record(run=r) for r in (1, 2, 3)], [relay_record(run=r) for r in (1, 2, 3)])
    assert found == {
        "ratio at most 2.0": (2.0, True),
        "POST /conferences p99 during the fan-out under 50 ms": (40.0, True),
        **{f"{s} under 150 MB peak RSS": (120.0, True) for s in SERVICES},
        "relay-limited": (1.0068, True),
    }


def test_targets_missed() -> None:
    slow = pipeline_record(ratio=2.01, post_during_ms_p99=50.0)
    slow["peak_rss_mb"] = {**slow["peak_rss_mb"], "notifications": 150.0}
    found = judged([slow], [relay_record(ratio_to_limit=1.051)])
    assert found["ratio at most 2.0"] == (2.01, False)
    assert found["POST /conferences p99 during the fan-out under 50 ms"] == (50.0, False)
    assert found["notifications under 150 MB peak RSS"] == (150.0, False)
    assert found["conferences under 150 MB peak RSS"] == (120.0, True)
    assert found["relay-limited"] == (1.051, False)


def test_the_post_target_is_the_median_of_the_runs_p99() -> None:
    runs = [pipeline_record(run=1, post_during_ms_p99=30.0), pipeline_record(run=2, post_during_ms_p99=45.0)]
    runs.append(pipeline_record(run=3, post_during_ms_p99=400.0))
    assert judged(runs, [])["POST /conferences p99 during the fan-out under 50 ms"] == (45.0, True)


@pytest.mark.parametrize(
    ("why", "figures"),
    [
        ("one run too slow, though the median is within", {"ratio_to_limit": 1.06}),
        ("mails went before the pace allowed them", {"ratio_to_limit": 0.9}),
        ("an invitee mailed twice", {"mails_received": 1_001, "invitees_mailed_twice": 1}),
        ("an invitee not mailed", {"mails_received": 999, "invitees_mailed": 999}),
        ("an invitation failed", {"invitation_counts": {"sent": 999, "pending": 0, "failed": 1, "total": 1_000}}),
        (
            "an invitation still deferred",
            {"invitation_counts": {"sent": 999, "pending": 1, "failed": 0, "total": 1_000}},
        ),
    ],
)
def test_the_relay_target_is_missed_by_any_run(why: str, figures: dict[str, Any]) -> None:
    runs = [relay_record(run=1), relay_record(run=2, **figures), relay_record(run=3)]
    _, met = judged([pipeline_record()], runs)["relay-limited"]
    assert met is False, why


def test_the_relay_target_is_judged_only_at_1000_and_600_a_minute() -> None:
    assert judged([pipeline_record()], [relay_record(n=150, rate=120)])["relay-limited"] == (None, None)


def test_results_saved_before_the_new_figures_still_make_rows_targets_and_the_page() -> None:
    old = pipeline_record()
    for name in ("post_during_ms_p50", "post_during_ms_p99", "post_during_ms_each"):
        del old[name]
    rows = report.summarise([old])
    assert rows[0]["post_during_ms_p99"] == {} and rows[0]["post_during_count"] == {}
    found = judged([old], [])
    assert found["POST /conferences p99 during the fan-out under 50 ms"] == (None, None)
    assert found["relay-limited"] == (None, None)
    assert found["ratio at most 2.0"] == (2.0, True)
    page = report.markdown(summary([old], []))
    post = "| POST /conferences p99 during the fan-out under 50 ms (N=10,000, one notifications instance) |"
    assert f"{post} not measured | – |" in page
    assert "Not measured in these results" in page
    assert "| 10,000 | 1 | 40.0 | 20.00 | 2.0 | 250.0 | 20.0 | – | – |" in page  # the old POST median kept


def test_a_fan_out_that_ended_before_the_first_probe_answered_has_no_post_figure() -> None:
    quick = [pipeline_record(run=1, post_during_ms_p50=None, post_during_ms_p99=None, post_during_ms_each=[])]
    rows = report.summarise([*quick, pipeline_record(run=2)])
    assert rows[0]["post_during_ms_p99"] == {"median": 40.0, "min": 40.0, "max": 40.0}
    assert rows[0]["post_during_count"] == {"median": 40.0, "min": 0.0, "max": 80.0}


def summary(records: list[dict[str, Any]], relay: list[dict[str, Any]]) -> dict[str, Any]:
    rows, relay_rows = report.summarise(records), report.summarise_relay(relay)
    return {
        "date": "2026-11-27T01:00:00+00:00",
        "machine": {"cores": 2, "python": "3.11.7", "platform": "Linux"},
        "runs": 3,
        "targets": report.targets(rows, relay_rows),
        "results": rows,
        "relay": relay_rows,
    }


def test_the_page_shows_the_relay_scenario_and_its_target() -> None:
    relay = [relay_record(run=1), relay_record(run=2, ratio_to_limit=1.02, pipeline_seconds=97.8), relay_record(run=3)]
    page = report.markdown(summary([pipeline_record()], relay))
    assert "## Relay-limited: N invitations at SMTP_RATE_PER_MINUTE" in page
    figures = "| 96.5 (96.5–97.8) | 95.8 | 1.007 (1.007–1.020) | 0.06 | 1,000 | 1,000 | yes | 0 | 0 | yes | 0.5 |"
    assert f"| 1,000 | 600 {figures}" in page
    target = "within 5 % of the pace's limit, each invitee mailed once, none failed | 1.020 × the limit | met |"
    assert target in page
    assert "| 10,000 | 1 | 40.0 | 20.00 | 2.0 | 250.0 | 20.0 | 12.0 | 40.0 |" in page


def test_the_hand_written_profile_is_kept() -> None:
    data = summary([pipeline_record()], [])
    existing = report.markdown(data).replace(report.PROFILE_PLACEHOLDER.strip("\n"), "## Profile\n\nVon Hand.")
    assert "Von Hand." in report.markdown(copy.deepcopy(data), existing)
