"""quartier: run the embedded stack (`quartier run`); operator commands follow."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import run as run_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quartier", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the embedded stack and the three services")
    run.add_argument("--var", type=Path, default=Path("var"), help="data, mail and log folder (default: ./var)")
    run.add_argument("--base-port", type=int, default=8001, help="actors on it, conferences and notifications next")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_module.run(args.var.resolve(), args.base_port)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
