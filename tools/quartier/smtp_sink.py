"""A local SMTP server that stores every received mail as an .eml file (the embedded stack's
stand-in for Mailpit). One file per accepted message: <n>-<message id>.eml in the mail folder.
"""

from __future__ import annotations

import argparse
import itertools
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Answer:
    """Answer RCPT for one address with ``code`` (550 rejects for good, 451 defers), for its
    first ``times`` attempts or, without ``times``, always."""

    code: int
    times: int | None = None

    @classmethod
    def parse(cls, text: str) -> tuple[str, Answer]:
        """``address=CODE`` or ``address=CODExN``, e.g. ``late@example.org=451x2``."""
        address, _, rule = text.partition("=")
        code, _, times = rule.partition("x")
        return address.lower(), cls(int(code), int(times) if times else None)


class MaildirHandler:
    """Stores accepted mails; ``answers`` makes chosen recipients fail, so failures can be shown
    and tested."""

    def __init__(self, folder: Path, answers: dict[str, Answer] | None = None) -> None:
        self.folder = folder
        self.answers = {k.lower(): v for k, v in (answers or {}).items()}
        self.attempts: Counter[str] = Counter()
        folder.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(len(list(folder.glob("*.eml"))) + 1)
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        answer = self.answers.get(address.lower())
        self.attempts[address.lower()] += 1
        if answer is not None and (answer.times is None or self.attempts[address.lower()] <= answer.times):
            return f"{answer.code} {'Mailbox unavailable' if answer.code >= 500 else 'Try again later'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message_id = message_from_bytes(content).get("Message-ID", "") or "no-id"
        safe = re.sub(r"[^A-Za-z0-9@._-]", "", message_id)[:120]
        with self._lock:
            number = next(self._counter)
        path = self.folder / f"{number:06d}-{safe}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.rename(path)  # readers never see half a mail
        return "250 Message accepted for delivery"


def serve(host: str, port: int, folder: Path, answers: dict[str, Answer] | None = None) -> Controller:
    controller = Controller(
        MaildirHandler(folder, answers), hostname=host, port=port, ready_timeout=10, enable_SMTPUTF8=True
    )
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument(
        "--answer", action="append", default=[], metavar="ADDRESS=CODE[xN]", help="e.g. late@example.org=451x2"
    )
    args = parser.parse_args(argv)
    controller = serve(args.host, args.port, args.maildir, dict(Answer.parse(a) for a in args.answer))
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"smtp sink on {args.host}:{args.port}, mails in {args.maildir}", flush=True)
    while not stop.is_set():
        time.sleep(0.2)
    controller.stop()


if __name__ == "__main__":
    main()
