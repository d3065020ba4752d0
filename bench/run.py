"""`make bench [N="1000 10000"] [RUNS=3] [RELAY_N=1000] [RELAY_RATE=600]`: measure, then write
bench/results/latest.json, docs/benchmarks.md and docs/benchmarks.png, and print the table.

Each run measures every (N, instances) row and then, unless RELAY_N is 0, the relay-limited
scenario (``relay``). Every run has a fresh stack; every process a run starts is stopped when it ends, also on a failure
or Ctrl-C. A failed run stops the benchmark with its reason and keeps its logs for inspection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from quartier_shared.services import SERVICES

from . import report
from .cluster import BenchCluster, BenchError, MemorySampler, cpu_used
from .floor import run_floor
from .pipeline import run_pipeline
from .relay import check_limit, mails_by_recipient, run_relay


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pipeline_timeout(n: int) -> float:
    """Generous: about 5.5 invitations/s at worst (30 min at N=10,000), never under 5 min."""
    return max(300.0, n * 0.18)


def setup_timeout(n: int) -> float:
    return max(300.0, n * 0.1)


@contextmanager
def started(cluster: BenchCluster) -> Iterator[float]:
    """The cluster started (yields its start-up seconds), and stopped at the end, whatever happens;
    a failed run keeps its folder (logs) for inspection, an interrupted one does not."""
    failed = False
    try:
        began = time.monotonic()
        cluster.start()
        startup = time.monotonic() - began
        say(f"  stack and {len(cluster.services.instances)} service processes ready in {startup:.1f} s")
        yield startup
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        failed = True
        say(f"  run failed: {exc!r}; logs kept in {cluster.log_dir}")
        raise
    finally:
        cluster.stop(failed=failed)


def measure(n: int, instances: int, run: int) -> dict[str, Any]:
    cluster = BenchCluster(notifications_instances=instances)
    with started(cluster) as startup:
        sampler = MemorySampler({**cluster.service_pids(), **cluster.infra_pids()}).start()
        try:
            pipeline = asyncio.run(run_pipeline(cluster, n, pipeline_timeout(n), setup_timeout(n)))
        finally:
            peaks = sampler.stop()
        say(
            f"  set-up {pipeline.setup_seconds:.1f} s; pipeline {pipeline.pipeline_seconds:.1f} s "
            f"({pipeline.invitations_per_second:.1f} invitations/s)"
        )
        cluster.stop_services()
        mails = sum(1 for _ in cluster.stack.maildir.glob("*.eml"))  # before the floor adds its own
        if mails != n:
            say(f"  note: the SMTP sink received {mails} mails for {n} invitations")
        cpu_before = cluster.cpu_seconds()
        floor = asyncio.run(run_floor(cluster.infra, n))
        floor_cpu = cpu_used(cpu_before, cluster.cpu_seconds())
        say(
            f"  floor {floor.floor_seconds:.2f} s (kafka {floor.kafka_seconds:.2f}, "
            f"mongodb {floor.mongodb_seconds:.2f}, smtp {floor.smtp_seconds:.2f})"
        )

    def peak_of(service: str) -> float:
        return max(v for name, v in peaks.items() if name.partition("-")[0] == service)

    return {
        "run": run,
        "n": n,
        "instances": instances,
        "startup_seconds": round(startup, 2),
        **asdict(pipeline),
        "mails_received": mails,
        "floor": {**asdict(floor), "floor_seconds": floor.floor_seconds, "cpu_seconds": floor_cpu},
        "floor_seconds": floor.floor_seconds,
        "ratio": round(pipeline.pipeline_seconds / floor.floor_seconds, 2),
        "peak_rss_mb": {s: peak_of(s) for s in SERVICES},
        "peak_rss_mb_each": peaks,
    }


def measure_relay(n: int, rate: int, run: int) -> dict[str, Any]:
    """The relay-limited scenario (``relay``) with one notifications instance."""
    cluster = BenchCluster(notifications_env={"SMTP_RATE_PER_MINUTE": str(rate)})
    with started(cluster) as startup:
        say("  set-up, then the POST just after the next clock minute begins")
        relay = asyncio.run(run_relay(cluster, n, rate, setup_timeout(n)))
        say(
            f"  pipeline {relay.pipeline_seconds:.1f} s against the pace's limit {relay.limit_seconds:.1f} s "
            f"(ratio {relay.ratio_to_limit:.3f})"
        )
        cluster.stop_services()
        mailed = mails_by_recipient(cluster.stack.maildir)
    return {
        "run": run,
        "startup_seconds": round(startup, 2),
        **asdict(relay),
        "mails_received": sum(mailed.values()),
        "invitees_mailed": len(mailed),
        "invitees_mailed_twice": sum(1 for count in mailed.values() if count > 1),
    }


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every finally: processes are stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1_000, 10_000], help="invitations per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median, min, max)")
    parser.add_argument(
        "--instances", type=int, nargs="+", default=[1, 2], help="notifications instances (one row each)"
    )
    parser.add_argument(
        "--relay-n", type=int, default=1_000, help="invitations of the relay-limited scenario per run (0: none)"
    )
    parser.add_argument(
        "--relay-rate", type=int, default=600, help="its SMTP_RATE_PER_MINUTE (1 to 100,000, as the setting)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: rebuild docs/benchmarks.md and the chart from saved results",
    )
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        data = report.write_all(saved["raw"], saved["runs"], measured=saved, relay_records=saved.get("relay_raw", []))
        print(report.results_table(data["results"]))
        return 0
    if args.runs < 1 or any(n < 1 for n in args.n) or any(k < 1 for k in args.instances):
        parser.error("N, RUNS and instances must be positive")
    if args.relay_n < 0 or not 1 <= args.relay_rate <= 100_000:
        parser.error("--relay-n must be 0 or more, --relay-rate between 1 and 100,000")
    if args.relay_n:
        try:
            check_limit(args.relay_n, args.relay_rate)
        except ValueError as exc:
            parser.error(str(exc))
    signal.signal(signal.SIGTERM, _terminate)

    started = time.monotonic()
    records: list[dict[str, Any]] = []
    relay_records: list[dict[str, Any]] = []
    total = args.runs * (len(args.n) * len(args.instances) + (1 if args.relay_n else 0))
    try:
        # Runs interleave (all rows once, then again), so a slow spell of the machine hits every row alike.
        for run in range(1, args.runs + 1):
            for n in args.n:
                for instances in args.instances:
                    at = f"{len(records) + len(relay_records) + 1}/{total}"
                    say(f"run {at}: N={n:,}, notifications instances={instances}")
                    records.append(measure(n, instances, run))
            if args.relay_n:
                at = f"{len(records) + len(relay_records) + 1}/{total}"
                say(f"run {at}: relay-limited, N={args.relay_n:,} at SMTP_RATE_PER_MINUTE={args.relay_rate}")
                relay_records.append(measure_relay(args.relay_n, args.relay_rate, run))
    except (BenchError, TimeoutError, OSError) as exc:
        say(f"benchmark failed, nothing written: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted: every process was stopped, nothing written")
        return 130

    data = report.write_all(records, args.runs, relay_records=relay_records)
    print()
    print(report.results_table(data["results"]))
    print()
    if relay_records:
        print(report.relay_table(data["relay"]))
        print()
    print(report.targets_table(data["targets"]))
    print()
    say(
        f"done in {time.monotonic() - started:.0f} s: {report.RESULTS_DIR / 'latest.json'}, "
        f"{report.DOC}, {report.CHART}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
