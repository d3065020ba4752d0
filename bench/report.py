"""Summaries of the runs: bench/results/latest.json, docs/benchmarks.md, docs/benchmarks.png and the
table on stdout. Each figure is the median of the runs, with their minimum and maximum."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quartier_shared.services import SERVICES

from .cluster import INFRA_NAMES
from .relay import is_within

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"

TARGET_N = 10_000
TARGET_RATIO = 2.0
TARGET_POST_P99_MS = 50.0  # POST /conferences during the fan-out, 99th percentile
TARGET_RSS_MB = 150.0
TARGET_RELAY_N = 1_000
TARGET_RELAY_RATE = 600
TARGET_RELAY_TOLERANCE = 0.05  # of the pace's limit, either side

PROFILE_START = "<!-- profile:start (hand-written: `make bench` keeps this section as it is) -->"
PROFILE_END = "<!-- profile:end -->"
PROFILE_PLACEHOLDER = """## Profile: what dominates

_To be written: where the time of the pipeline goes (which process is busy, which hop waits), from
a profile of a run at N=10,000, and what would move the ratio towards the floor._
"""

Stats = dict[str, float]


def stats(values: Iterable[float]) -> Stats:
    """Median, min and max; empty when there is no value (a figure older results lack)."""
    found = list(values)
    if not found:
        return {}
    return {"median": round(statistics.median(found), 3), "min": round(min(found), 3), "max": round(max(found), 3)}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is in requirements-dev.txt
        pass
    return info


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (n, instances): median, min and max of each figure over the runs."""
    rows = []
    for key in sorted({(r["n"], r["instances"]) for r in records}):
        runs = [r for r in records if (r["n"], r["instances"]) == key]

        def of(name: str, runs: list[dict[str, Any]] = runs) -> Stats:
            return stats(r[name] for r in runs if r.get(name) is not None)

        cpu = [_per_service(r["cpu_seconds"]) for r in runs]
        processes = sorted({p for c in cpu for p in c}, key=_process_order)
        rows.append(
            {
                "n": key[0],
                "instances": key[1],
                "runs": len(runs),
                "pipeline_seconds": of("pipeline_seconds"),
                "floor_seconds": of("floor_seconds"),
                "floor_parts": {
                    part: stats(r["floor"][part] for r in runs)
                    for part in ("kafka_seconds", "mongodb_seconds", "smtp_seconds")
                },
                "ratio": of("ratio"),
                "invitations_per_second": of("invitations_per_second"),
                "post_conference_ms": of("post_conference_ms"),
                "post_during_ms_p50": of("post_during_ms_p50"),
                "post_during_ms_p99": of("post_during_ms_p99"),
                "post_during_count": stats(len(r["post_during_ms_each"]) for r in runs if "post_during_ms_each" in r),
                "latency_ms_p50": of("latency_ms_p50"),
                "latency_ms_p95": of("latency_ms_p95"),
                "latency_ms_p99": of("latency_ms_p99"),
                "peak_rss_mb": {s: stats(r["peak_rss_mb"][s] for r in runs) for s in SERVICES},
                "peak_rss_mb_infra": {p: stats(r["peak_rss_mb_each"][p] for r in runs) for p in INFRA_NAMES},
                "setup_seconds": of("setup_seconds"),
                "confirm_seconds": of("confirm_seconds"),
                "mails_received": of("mails_received"),
                "load_average_1m": of("load_average_1m"),
                "other_cpu_seconds": stats(r["cpu_seconds"]["other"] for r in runs if "other" in r["cpu_seconds"]),
                "floor_other_cpu_seconds": stats(
                    r["floor"]["cpu_seconds"]["other"] for r in runs if "other" in r["floor"].get("cpu_seconds", {})
                ),
                "republished_sent_events": of("republished_sent_events"),
                "duplicate_sent_events": of("duplicate_sent_events"),
                "cpu_seconds": {p: stats(c.get(p, 0.0) for c in cpu) for p in processes},
                "message_bytes": runs[0]["floor"]["message_bytes"],
                "mail_bytes": runs[0]["floor"]["mail_bytes"],
                "smtp_connections": runs[0]["floor"]["smtp_connections"],
            }
        )
    return rows


def _per_service(cpu: dict[str, float]) -> dict[str, float]:
    """CPU seconds per service: the instances of one service (notifications-1, -2) added up."""
    found: dict[str, float] = {}
    for name, seconds in cpu.items():
        base = name.partition("-")[0]
        found[base] = round(found.get(base, 0.0) + seconds, 2)
    return found


def summarise_relay(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (n, rate) of the relay-limited scenario: median, min and max over the runs, and
    whether every run mailed each invitee exactly once and left no invitation failed or pending."""
    rows = []
    for key in sorted({(r["n"], r["rate_per_minute"]) for r in records}):
        runs = [r for r in records if (r["n"], r["rate_per_minute"]) == key]

        def of(name: str, runs: list[dict[str, Any]] = runs) -> Stats:
            return stats(r[name] for r in runs)

        rows.append(
            {
                "n": key[0],
                "rate_per_minute": key[1],
                "runs": len(runs),
                "pipeline_seconds": of("pipeline_seconds"),
                "limit_seconds": of("limit_seconds"),
                "ratio_to_limit": of("ratio_to_limit"),
                "ratio_farthest_from_limit": max((r["ratio_to_limit"] for r in runs), key=lambda v: abs(v - 1)),
                "post_offset_seconds": of("post_offset_seconds"),
                "mails_received": of("mails_received"),
                "invitees_mailed": of("invitees_mailed"),
                "invitees_mailed_twice": of("invitees_mailed_twice"),
                "sent": stats(r["invitation_counts"]["sent"] for r in runs),
                "failed": stats(r["invitation_counts"]["failed"] for r in runs),
                "pending": stats(r["invitation_counts"]["pending"] for r in runs),
                "each_mailed_once": all(r["mails_received"] == r["invitees_mailed"] == r["n"] for r in runs),
                "all_sent": all(
                    r["invitation_counts"]["sent"] == r["n"] == r["invitation_counts"]["total"]
                    and r["invitation_counts"]["failed"] == r["invitation_counts"]["pending"] == 0
                    for r in runs
                ),
                "setup_seconds": of("setup_seconds"),
                "load_average_1m": of("load_average_1m"),
                "other_cpu_seconds": stats(r["cpu_seconds"]["other"] for r in runs if "other" in r["cpu_seconds"]),
            }
        )
    return rows


def targets(rows: list[dict[str, Any]], relay_rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The issue's targets: the ratio, POST and memory at N=10,000 with one notifications
    instance; the relay-limited scenario at 1,000 invitations and 600 a minute. A target whose
    run is missing, or whose figure older results lack, has the value None."""
    row = next((r for r in rows if r["n"] == TARGET_N and r["instances"] == 1), None)
    relay = next(
        (r for r in relay_rows or [] if r["n"] == TARGET_RELAY_N and r["rate_per_minute"] == TARGET_RELAY_RATE), None
    )
    found: list[dict[str, Any]] = []

    def judge(name: str, value: float | None, met: bool, unit: str = "", digits: int = 0) -> None:
        found.append(
            {"target": name, "value": value, "met": met if value is not None else None, "unit": unit, "digits": digits}
        )

    at = f"N={TARGET_N:,}, one notifications instance"
    ratio = row["ratio"].get("median") if row else None
    judge(f"ratio at most {TARGET_RATIO} ({at})", ratio, ratio is not None and ratio <= TARGET_RATIO, digits=2)
    post = row.get("post_during_ms_p99", {}).get("median") if row else None
    judge(
        f"POST /conferences p99 during the fan-out under {TARGET_POST_P99_MS:.0f} ms ({at})",
        post,
        post is not None and post < TARGET_POST_P99_MS,
        unit=" ms",
        digits=1,
    )
    for s in SERVICES:
        peak = row["peak_rss_mb"][s].get("max") if row else None
        judge(
            f"{s} under {TARGET_RSS_MB:.0f} MB peak RSS ({at})", peak, peak is not None and peak < TARGET_RSS_MB, " MB"
        )
    within = relay["ratio_farthest_from_limit"] if relay else None
    judge(
        f"relay-limited: {TARGET_RELAY_N:,} invitations at {TARGET_RELAY_RATE} a minute within "
        f"{TARGET_RELAY_TOLERANCE * 100:.0f} % of the pace's limit, each invitee mailed once, none failed",
        within,
        relay is not None
        and within is not None
        and is_within(within, TARGET_RELAY_TOLERANCE)
        and relay["each_mailed_once"]
        and relay["all_sent"],
        unit=" × the limit",
        digits=3,
    )
    return found


# --- text ---------------------------------------------------------------------------------------------


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def cell(s: Stats, digits: int = 1) -> str:
    if not s:
        return "–"
    if s["min"] == s["max"]:
        return _fmt(s["median"], digits)
    return f"{_fmt(s['median'], digits)} ({_fmt(s['min'], digits)}–{_fmt(s['max'], digits)})"


Row = dict[str, Any]
Column = tuple[str, Callable[[Row], str]]  # its title, and its cell in a row


def markdown_table(columns: Sequence[Column], rows: Iterable[Row], align: str | None = None) -> str:
    """A markdown table; ``align`` has "l" or "r" per column (default: all right, as numbers are)."""
    separator = "|" + "".join("---|" if a == "l" else "---:|" for a in align or "r" * len(columns))
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", separator]
    lines += ["| " + " | ".join(value(r) for _, value in columns) + " |" for r in rows]
    return "\n".join(lines)


def figure(title: str, *path: str, digits: int = 1) -> Column:
    """A column of one figure's median (min–max), found in a row by its ``path`` of keys."""

    def value(r: Row) -> str:
        for key in path:
            r = r[key]
        return cell(r, digits)

    return title, value


RUN: list[Column] = [("N", lambda r: f"{r['n']:,}"), ("notifications instances", lambda r: str(r["instances"]))]


def results_table(rows: list[Row]) -> str:
    rss = [figure(f"peak RSS MB {s}" if i == 0 else s, "peak_rss_mb", s, digits=0) for i, s in enumerate(SERVICES)]
    return markdown_table(
        [
            *RUN,
            figure("pipeline s", "pipeline_seconds"),
            figure("floor s", "floor_seconds", digits=2),
            figure("ratio", "ratio"),
            figure("invitations/s", "invitations_per_second"),
            figure("POST /conferences ms", "post_conference_ms"),
            figure("POST during the fan-out p50 ms", "post_during_ms_p50"),
            figure("POST during p99 ms", "post_during_ms_p99"),
            figure("latency p50 ms", "latency_ms_p50", digits=0),
            figure("p95 ms", "latency_ms_p95", digits=0),
            figure("p99 ms", "latency_ms_p99", digits=0),
            *rss,
        ],
        rows,
    )


def floor_table(rows: list[Row]) -> str:
    return markdown_table(
        [
            *RUN,
            figure("Kafka produce + consume s", "floor_parts", "kafka_seconds", digits=2),
            figure("MongoDB insert_many s", "floor_parts", "mongodb_seconds", digits=2),
            figure("SMTP s", "floor_parts", "smtp_seconds", digits=2),
            figure("floor s", "floor_seconds", digits=2),
        ],
        rows,
    )


def checks_table(rows: list[Row]) -> str:
    return markdown_table(
        [
            *RUN,
            figure("mails received by the sink", "mails_received", digits=0),
            figure("InvitationSent published again", "republished_sent_events", digits=0),
            figure("set-up s (not measured)", "setup_seconds"),
            figure("GET shows all sent, s after the last event", "confirm_seconds", digits=2),
            figure("load average before", "load_average_1m", digits=2),
            figure("CPU s of other programs: pipeline", "other_cpu_seconds"),
            figure("floor", "floor_other_cpu_seconds"),
        ],
        rows,
    )


def cpu_table(rows: list[Row]) -> str:
    def median(*path: str) -> Callable[[Row], str]:
        def value(r: Row) -> str:
            for key in path:
                if key not in r:
                    return ""  # a process this run did not have
                r = r[key]
            return _fmt(r["median"], 1)

        return value

    processes = sorted({p for r in rows for p in r["cpu_seconds"]}, key=_process_order)
    pipeline: Column = ("pipeline s", median("pipeline_seconds"))
    return markdown_table([*RUN, pipeline, *((p, median("cpu_seconds", p)) for p in processes)], rows)


def _process_order(name: str) -> tuple[int, str]:
    order = [*SERVICES, *INFRA_NAMES, "bench", "other"]
    base = name.partition("-")[0]
    return (order.index(base) if base in order else len(order), name)


def targets_table(found: list[dict[str, Any]]) -> str:
    def measured(t: dict[str, Any]) -> str:
        if t["value"] is None:
            return "not measured"
        return f"{_fmt(t['value'], t['digits'])}{t['unit']}"

    def met(t: dict[str, Any]) -> str:
        return "–" if t["value"] is None else "met" if t["met"] else "**not met**"

    columns: list[Column] = [("target", lambda t: str(t["target"])), ("measured", measured), ("met", met)]
    return markdown_table(columns, found, align="lrl")


def relay_table(rows: list[Row]) -> str:
    def yes_no(key: str) -> Callable[[Row], str]:
        return lambda r: "yes" if r[key] else "**no**"

    return markdown_table(
        [
            ("N", lambda r: f"{r['n']:,}"),
            ("SMTP_RATE_PER_MINUTE", lambda r: f"{r['rate_per_minute']:,}"),
            figure("pipeline s", "pipeline_seconds"),
            figure("the pace's limit s", "limit_seconds"),
            figure("pipeline / limit", "ratio_to_limit", digits=3),
            figure("POST s after the minute began", "post_offset_seconds", digits=2),
            figure("mails received by the sink", "mails_received", digits=0),
            figure("invitees mailed", "invitees_mailed", digits=0),
            ("each mailed once", yes_no("each_mailed_once")),
            figure("failed", "failed", digits=0),
            figure("pending", "pending", digits=0),
            ("all sent", yes_no("all_sent")),
            figure("CPU s of other programs", "other_cpu_seconds"),
        ],
        rows,
    )


def _kept_profile(existing: str | None) -> str:
    if existing and PROFILE_START in existing and PROFILE_END in existing:
        inner = existing.split(PROFILE_START, 1)[1].split(PROFILE_END, 1)[0]
        return inner.strip("\n") + "\n"
    return PROFILE_PLACEHOLDER


def relay_section(relay_rows: list[Row]) -> str:
    """The relay-limited scenario's section of the page (a line saying it was not run when the
    results have none, as results saved before it existed)."""
    if not relay_rows:
        return "Not measured in these results (`--relay-n 0`, or results saved before the scenario existed)."
    return f"""{relay_table(relay_rows)}

The limit is when SMTP_RATE_PER_MINUTE lets the N-th mail go, counted from the POST; a ratio
below 1 would mean the pace let mails go early, above 1 is the time the pipeline adds to the
pace. The target is judged on the run farthest from the limit, not on the median."""


def markdown(data: dict[str, Any], existing: str | None = None) -> str:
    rows = data["results"]
    m = data["machine"]
    runs = data["runs"]
    sizes = rows[0] if rows else {}
    return f"""# Benchmarks: the invitation fan-out against the machine's floor

_Generated by `make bench` on {data["date"]} ({m["cores"]} cores, Python {m["python"]}, {m["platform"]});
{runs} run{"s" if runs != 1 else ""} per row: each figure is the median, with min–max in brackets when
there is more than one run. Raw figures: `bench/results/latest.json`. Do not edit by hand, except the
"Profile" section, which `make bench` keeps._

```sh
make bench                    # N=1,000 and 10,000, 3 runs each (N=10,000 takes minutes per run),
                              # and the relay-limited scenario (1,000 at 600 a minute) once per run
make bench N=1000 RUNS=1 RELAY_N=0   # a quick look, under two minutes
```

## Results

{results_table(rows)}

![pipeline against floor seconds, and invitations per second](benchmarks.png)

## Targets of the issue

{targets_table(data["targets"])}

Ratio and POST p99 are the medians of the runs; peak RSS is the highest of the runs (with two
notifications instances, the higher of the two processes). The relay-limited target is judged on
its run farthest from the limit, and only when every run mailed each invitee once and left no
invitation failed or pending.

## Relay-limited: N invitations at SMTP_RATE_PER_MINUTE

{relay_section(data.get("relay", []))}

## The floor, part by part

{floor_table(rows)}

Kafka messages are {sizes.get("message_bytes", 0):,} bytes (an InvitationIssued envelope), MongoDB documents
are the same envelope, and each mail is {sizes.get("mail_bytes", 0):,} bytes (a real invitation rendered by the
notifications service's own code), sent over {sizes.get("smtp_connections", 4)} reused SMTP connections.

## CPU seconds per process during the pipeline

From the `POST /conferences` until the last `InvitationSent` (median of the runs, user + system, with
children; two notifications instances are added up). The machine has {m["cores"]} cores, so a column
close to the pipeline seconds is a process that was busy the whole time. "bench" is the benchmark's
own reader; "other" is every other program on the machine.

{cpu_table(rows)}

## Side checks

{checks_table(rows)}

Each invitation must reach the sink exactly once. "Published again" counts `InvitationSent` events read
a second time with the same event id (at-least-once relaying; consumers ignore them). The last
columns show how busy the machine was with other programs (tests, builds) during the run: CPU
seconds used by processes outside the benchmark, out of {m["cores"]} × the seconds measured. Compare
rows only when those are small.

{PROFILE_START}
{_kept_profile(existing)}{PROFILE_END}

## How it is measured

Each run starts a fresh embedded stack (Tansu, SecantusDB, SMTP sink) in a new temporary folder, and
the three services as separate processes exactly as `make run` starts them (`quartier.processes`,
with the embedded stack's Kafka tuning), on free ports. With "2 notifications instances" a second
notifications process with its own port and the same environment joins the same consumer group.

- **Set-up (not measured)**: N consenting actors in district IV, published as `ActorRegistered`
  events straight to `quartier.actors` and `ContactChanged` events to `quartier.contacts` (the
  envelopes and headers the actors service writes), then
  waiting until `quartier_conferences.roster` and `quartier_notifications.contacts` hold N documents.
- **Pipeline**: from just before `POST /conferences` until the N-th distinct `InvitationSent` of that
  conference is read from `quartier.deliveries` by a plain aiokafka reader (no consumer group);
  then one `GET /conferences/{{id}}` (polled every 0.5 s at most) must show all N `sent`.
  invitations/s = N / pipeline seconds.
- **Latency** of each invitation: `occurred_at` of its `InvitationSent` envelope minus `occurred_at`
  of the `ConferenceScheduled` envelope (nearest-rank percentiles).
- **POST /conferences**: median of three requests per run: two to a district without actors, then
  the one that starts the fan-out.
- **POST during the fan-out**: from the answer to the POST that starts the fan-out until its last
  `InvitationSent` is read, one conference to a district without actors (it fans out to nobody)
  every 0.5 s at most, 1,200 at most, from a thread of the benchmark with its own connection (so
  the reader of the deliveries topic does not delay it); p50 and p99 of those requests
  (nearest rank) per run. The target wants the p99 under 50 ms during the N=10,000 fan-out. These
  requests (two a second, each an empty conference) are part of the load the pipeline is timed under.
- **Peak RSS**: every process (with children) sampled every 0.2 s from start-up to the end of the
  pipeline with psutil.
- **Floor**, in the same run on the same broker, database and SMTP sink, after the services are
  stopped: N messages produced through the services' publisher without awaiting each, then read
  by one consumer; N documents with PyMongo's async `insert_many` in batches of 1,000; N mails with
  aiosmtplib over as many reused connections as notifications uses (`SMTP_CONNECTIONS`). floor =
  the sum of the three. ratio = pipeline seconds / floor seconds of the same run.
- **Relay-limited scenario** (a fresh stack of its own, once per run after the other rows; skipped
  with `--relay-n 0`): the notifications process starts with `SMTP_RATE_PER_MINUTE` (default 600),
  N actors (default 1,000) are set up as above, and the `POST /conferences` waits for the next
  clock minute and goes just after it begins, so that every run starts with a whole minute of
  slots. The pace (`notifications.rate_limit`) gives the n-th mail of a clock minute the slot
  minute + (n − 1) × 54 s / rate and sends a mail that finds its minute full in the next one, so
  the k-th mail of the fan-out goes at the earliest q × 60 s + r × 54 s / rate after the POST's
  minute began, with q, r = divmod(k − 1, rate). **The limit** is that moment for the N-th mail,
  minus how long after the minute's start the POST went: at 1,000 and 600 a minute, 60 + 399 × 0.09
  = 95.91 s from the minute's start. The pipeline is timed as above (until the N-th
  `InvitationSent` is read); ratio = pipeline / limit, within 5 % meaning 0.95 to 1.05. The run
  also counts the mails in the SMTP sink by recipient (N, one per invitee) and reads
  `GET /conferences/{{id}}` at the end (all N `sent`, none `failed` or `pending`).
"""


def write_chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r["n"] for r in rows})
    instances = sorted({r["instances"] for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / (len(instances) + 1)

    def bar(ax: Any, offset: int, label: str, series: list[Stats | None], bars: int) -> None:
        xs = [i + (offset - (bars - 1) / 2) * width for i in range(len(ns))]
        med = [s["median"] if s else 0.0 for s in series]
        low = [s["median"] - s["min"] if s else 0.0 for s in series]
        high = [s["max"] - s["median"] if s else 0.0 for s in series]
        ax.bar(xs, med, width, label=label, yerr=[low, high], capsize=3)

    def find(n: int, k: int, name: str) -> Stats | None:
        row = next((r for r in rows if r["n"] == n and r["instances"] == k), None)
        return row[name] if row else None

    def per_instance_count(ax: Any, name: str, label: str, bars: int) -> None:
        """One bar per number of notifications instances, of the figure ``name``, at each N."""
        for offset, k in enumerate(instances):
            instances_label = f"{k} notifications instance{'s' if k > 1 else ''}"
            bar(ax, offset, label + instances_label, [find(n, k, name) for n in ns], bars)

    per_instance_count(left, "pipeline_seconds", "pipeline, ", len(instances) + 1)
    bar(left, len(instances), "floor", [find(n, instances[0], "floor_seconds") for n in ns], len(instances) + 1)
    left.set_title("seconds for N invitations (lower is better)")
    left.set_ylabel("seconds")
    if len(ns) > 1:
        left.set_yscale("log")

    per_instance_count(right, "invitations_per_second", "", len(instances))
    right.set_title("invitations per second (higher is better)")
    right.set_ylabel("invitations / s")

    for ax in (left, right):
        ax.set_xticks(range(len(ns)), [f"N={n:,}" for n in ns])
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top * (6 if ax.get_yscale() == "log" else 1.35))  # room for the legend
        ax.legend(fontsize="small", loc="upper left")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(
    records: list[dict[str, Any]],
    runs: int,
    measured: dict[str, Any] | None = None,
    relay_records: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Writes latest.json (and a dated copy), the markdown and the chart; returns the summary.

    ``measured``: the date and machine of earlier results whose documents are being rebuilt.
    ``relay_records``: the runs of the relay-limited scenario (none: not measured).
    """
    rows = summarise(records)
    relay_rows = summarise_relay(relay_records or [])
    now = datetime.fromisoformat(measured["date"]) if measured else datetime.now(UTC)
    data = {
        "date": now.isoformat(timespec="seconds"),
        "machine": measured["machine"] if measured else machine(),
        "runs": runs,
        "targets": targets(rows, relay_rows),
        "results": rows,
        "relay": relay_rows,
        "raw": records,
        "relay_raw": relay_records or [],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    (RESULTS_DIR / "latest.json").write_text(text)
    label = "-".join(f"n{n}" for n in sorted({r["n"] for r in rows}))
    (RESULTS_DIR / f"{now:%Y%m%dT%H%M%SZ}-{label}-runs{runs}.json").write_text(text)
    write_chart(rows, CHART)
    existing = DOC.read_text() if DOC.exists() else None
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(markdown(data, existing))
    return data
