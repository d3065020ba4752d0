"""A whole Quartier on real processes, for fault injection: its own Kafka, MongoDB and SMTP sink,
and service instances that can be killed (-9), paused and restarted."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from quartier.embedded import EmbeddedStack, Infrastructure, Process, start_mongodb
from quartier.processes import ServiceProcesses
from tests.helpers import actor_body, conference_body, eventually, mail_files, read_mails

# Short timings so a fault case takes seconds, not minutes; the mechanisms are the production ones.
FAST = {
    "DELIVERY_LEASE_SECONDS": "5",
    "SMTP_BACKOFF_SECONDS": "0.2",
    "SMTP_MAX_ATTEMPTS": "4",
    # A mail still refused after its quick attempts fails at once instead of being deferred for a
    # day: the fault cases count outcomes (test_relay_limits covers the deferral).
    "SMTP_RETRY_FOR": "PT0S",
    "HANDLER_BACKOFF_SECONDS": "0.1",
    "MONGODB_TIMEOUT_MS": "2000",
}

REPORT = Path(__file__).resolve().parents[2] / "var" / "fault-suite" / "latest.json"


@dataclass
class Mails:
    by_recipient: dict[str, list[str]]  # address -> Message-IDs received

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.by_recipient.values())

    @property
    def duplicated(self) -> dict[str, list[str]]:
        return {a: ids for a, ids in self.by_recipient.items() if len(ids) > 1}


@dataclass
class Cluster:
    root: Path
    smtp_answers: list[str] = field(default_factory=list)
    stack: EmbeddedStack = field(init=False)
    infra: Infrastructure = field(init=False)
    services: ServiceProcesses = field(init=False)
    extra_mongo: dict[str, tuple[Process, str]] = field(default_factory=dict)
    # Mails one instance may have handed to SMTP without having recorded them yet: one per SMTP
    # connection (SMTP_CONNECTIONS, default 4). Only these may be resent after a kill -9.
    in_flight_per_instance: int = 4

    def start_infra(self) -> None:
        self.stack = EmbeddedStack(
            self.root / "stack", environ={}, log_dir=self.root / "logs", smtp_answers=self.smtp_answers
        )
        self.infra = self.stack.start()
        self.services = ServiceProcesses(self.infra, log_dir=self.root / "logs", env=FAST)

    # --- infrastructure faults -------------------------------------------------------------------

    def pause(self, what: str) -> None:
        self._infra_process(what).signal(signal.SIGSTOP)

    def resume(self, what: str) -> None:
        self._infra_process(what).signal(signal.SIGCONT)

    def _infra_process(self, what: str) -> Process:
        if what in self.extra_mongo:
            return self.extra_mongo[what][0]
        return self.stack.processes[what]

    def own_mongodb(self, service: str) -> str:
        """A MongoDB server of the service's own (so pausing it touches no other service)."""
        name = f"mongodb-{service}"
        proc, uri = start_mongodb(name, self.root / name, log_path=self.root / "logs" / f"{name}.log")
        self.extra_mongo[name] = (proc, uri)
        self.services.service_env[service] = {"MONGODB_URI": uri}
        return uri

    # --- services ---------------------------------------------------------------------------------

    def start_services(self, **copies: int) -> None:
        """Every service once (``notifications=2``: twice), each ready when this returns."""
        self.services.start(copies=copies)
        self.services.wait_ready()

    def kill(self, name: str) -> None:
        process = self.services.processes[name]
        process.signal(signal.SIGKILL)
        assert process.popen is not None
        process.popen.wait(10)

    def restart(self, name: str) -> None:
        self.services.restart(name)
        self.services.wait_ready([name])

    def url(self, service: str) -> str:
        return self.services.url_of(service)

    def http(self) -> httpx.AsyncClient:
        """A client of the services that sends a coordinator's token of the stack's own issuer."""
        return httpx.AsyncClient(timeout=30, headers=self.infra.auth_headers())

    def logs(self) -> str:
        return self.services.logs()

    def stop(self) -> None:
        self.services.stop()
        for proc, _ in self.extra_mongo.values():
            proc.stop()
        self.stack.stop()

    # --- observing --------------------------------------------------------------------------------

    def mails(self, *, notices: bool = False) -> Mails:
        """The mails the SMTP sink took; the Art. 14 notices (one per actor registered with
        consent) only with ``notices``, as ``read_mails`` does."""
        found: dict[str, list[str]] = defaultdict(list)
        for message in read_mails(self.stack.maildir, notices=notices):
            found[message["To"].addresses[0].addr_spec].append(str(message["Message-ID"]).strip())
        return Mails(dict(found))

    async def wait_for_mails(self, at_least: int, timeout: float = 120.0) -> int:
        """Until the SMTP sink holds at least ``at_least`` mails, notices left out (``mails``);
        returns how many it holds then."""

        async def enough() -> int:
            count = len(mail_files(self.stack.maildir))  # one file a mail, renamed in whole
            return count if count >= at_least else 0

        return await eventually(enough, timeout=timeout, interval=0.05)

    def database(self, service: str) -> Any:
        own = self.extra_mongo.get(f"mongodb-{service}")
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(own[1] if own else self.infra.mongodb_uri)
        return client[self.services.database(service)]


async def register_actors(
    http: httpx.AsyncClient,
    actors_url: str,
    count: int,
    district: str = "IV",
    prefix: str = "actor",
    parallel: int = 16,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Register ``count`` fictional actors, ``parallel`` requests at a time."""
    limit = asyncio.Semaphore(parallel)

    async def one(i: int) -> dict[str, Any]:
        body = actor_body(
            name=f"Initiative {prefix} {i}", districts=[district], email=f"{prefix}{i}@example.org", **fields
        )
        async with limit:
            for _ in range(20):
                response = await http.post(f"{actors_url}/actors", json=body)
                if response.status_code == 201:
                    return response.json()
                await asyncio.sleep(0.5)  # e.g. 503 while a dependency is paused
            raise AssertionError(f"registration failed: {response.status_code} {response.text}")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def schedule(http: httpx.AsyncClient, conferences_url: str, district: str = "IV") -> str:
    response = await http.post(f"{conferences_url}/conferences", json=conference_body(district=district))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def wait_for_copies(cluster: Cluster, count: int, timeout: float = 120.0) -> None:
    """Until the conferences roster and the notifications contacts both hold ``count`` actors."""
    roster, contacts = cluster.database("conferences")["roster"], cluster.database("notifications")["contacts"]

    async def copied() -> bool:
        return await roster.count_documents({}) >= count and await contacts.count_documents({}) >= count

    await eventually(copied, timeout=timeout, interval=0.5)


async def wait_for_outcomes(
    http: httpx.AsyncClient, cluster: Cluster, conference_id: str, expected: int, timeout: float = 180.0
) -> dict[str, Any]:
    """Until every invitation of the conference is sent or failed; returns the conference."""

    async def settled() -> dict[str, Any] | None:
        try:
            detail = (await http.get(f"{cluster.url('conferences')}/conferences/{conference_id}")).json()
        except httpx.HTTPError:
            return None
        counts = detail["counts"]
        done = counts["total"] == expected and counts["sent"] + counts["failed"] == expected
        return detail if done else None

    return await eventually(settled, timeout=timeout, interval=0.5)


async def invite(
    http: httpx.AsyncClient, cluster: Cluster, count: int, district: str, **register: Any
) -> tuple[list[dict[str, Any]], str]:
    """``count`` actors of ``district``, known to conferences and notifications, then a conference
    there: (the actors, the conference id)."""
    actors = await register_actors(http, cluster.url("actors"), count, district=district, **register)
    await wait_for_copies(cluster, count)
    return actors, await schedule(http, cluster.url("conferences"), district=district)


async def assert_invited_once(
    http: httpx.AsyncClient,
    cluster: Cluster,
    conference_id: str,
    actors: list[dict[str, Any]],
    timeout: float = 180.0,
    allowed_crash_duplicates: int = 0,
) -> dict[str, int]:
    """Until every invitation is settled; then each of ``actors`` was sent its mail, and nobody else
    got one, each once but for what a crash allows (see ``assert_each_once``). Returns its counts."""
    detail = await wait_for_outcomes(http, cluster, conference_id, len(actors), timeout)
    await asyncio.sleep(2)  # a late duplicate would land now
    assert detail["counts"]["sent"] == len(actors)
    return assert_each_once(cluster.mails(), {a["email"] for a in actors}, allowed_crash_duplicates)


def record(case: str, **counts: Any) -> None:
    """Keep the counts of the last run of each case (docs/fault-suite.md quotes them)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data[case] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **counts}
    REPORT.write_text(json.dumps(data, indent=2, sort_keys=True))


def assert_each_once(
    mails: Mails, expected: set[str], allowed_crash_duplicates: int = 0, max_copies: int = 2
) -> dict[str, int]:
    """Every expected recipient got its mail, nobody else got one; duplicates only as crashes
    allow: at most ``allowed_crash_duplicates`` extra copies in all, at most ``max_copies`` of one
    mail (one crash: two), each with the same Message-ID."""
    received = set(mails.by_recipient)
    assert received == expected, {
        "missing": sorted(expected - received)[:10],
        "unexpected": sorted(received - expected)[:10],
    }
    duplicated = mails.duplicated
    duplicates = sum(len(ids) - 1 for ids in duplicated.values())
    assert duplicates <= allowed_crash_duplicates, {a: len(ids) for a, ids in list(duplicated.items())[:10]}
    for address, ids in duplicated.items():
        assert len(ids) <= max_copies and len(set(ids)) == 1, (address, ids)
    return {
        "invitees": len(expected),
        "mails": mails.total,
        "lost": len(expected - received),
        "duplicates": duplicates,
    }


async def register_addresses(
    http: httpx.AsyncClient, actors_url: str, addresses: list[str], district: str
) -> list[dict[str, Any]]:
    """Register one actor per given address (for cases that script the SMTP server's answers)."""
    registered = []
    for i, address in enumerate(addresses):
        response = await http.post(
            f"{actors_url}/actors", json=actor_body(name=f"Verein {i}", districts=[district], email=address)
        )
        assert response.status_code == 201, response.text
        registered.append(response.json())
    return registered
