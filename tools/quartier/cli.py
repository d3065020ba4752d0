"""quartier: run the embedded stack (`quartier run`), mint tokens it accepts (`quartier token`),
and look after it: dead letters (`quartier dlq list|replay`), outboxes (`quartier outbox status`),
the topics' settings (`quartier topics apply`), an actor's personal data (`quartier privacy export`)
erasures after a restore (`quartier erasures list|reapply`) and the images' digests (`quartier images lock`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from quartier_shared.auth import QUARTER_MANAGER, ROLES
from quartier_shared.services import SERVICES
from quartier_shared.topics import DEAD_LETTERS_RETENTION_DAYS

from . import run as run_module
from .common import OperatorError, kafka_address, resolve
from .privacy_export import PARTS, TOKEN_VARIABLE, url_variable

CONNECTIONS = """where to connect: the flag, else the environment variable (%s), else var/stack.env
written by a running `make run` (another folder with --var)."""
KAFKA_SIGN_IN = """ Kafka credentials: KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and
KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) from the environment; none: PLAINTEXT."""


def _connection(parser: argparse.ArgumentParser, flag: str, variable: str, example: str) -> None:
    parser.add_argument(flag, metavar="ADDRESS", help=f"e.g. {example} (default: ${variable}, then var/stack.env)")
    parser.add_argument("--var", type=Path, default=Path("var"), help="folder of stack.env (default: ./var)")


def _dead_letter_days(value: str) -> int:
    """1 to 3650 days, as the services' setting allows."""
    if not value.isdigit() or not 1 <= int(value) <= 3650:
        raise argparse.ArgumentTypeError(f"a whole number of days from 1 to 3650, not {value[:20]!r}")
    return int(value)


def _dlq_topic(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic",
        choices=["main", "contacts"],
        default="main",
        help="main: quartier.dead-letters (default); contacts: the failed contact events, "
        "quartier.contacts.dead-letters",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quartier", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the embedded stack and the three services")
    run.add_argument("--var", type=Path, default=Path("var"), help="data, mail and log folder (default: ./var)")
    run.add_argument(
        "--base-port",
        type=int,
        help="actors on it, conferences and notifications next "
        f"(default: each service's own port, {', '.join(str(s.port) for s in SERVICES.values())})",
    )

    token = commands.add_parser(
        "token",
        help="print a bearer token the running `make run` stack accepts (signed with its key in var/auth/)",
        epilog='e.g. curl -H "Authorization: Bearer $(quartier token --role quarter_manager --district IV)" ...',
    )
    token.add_argument("--role", action="append", required=True, choices=ROLES, help="repeatable")
    token.add_argument("--district", action="append", default=[], help="district code, e.g. IV; repeatable")
    token.add_argument("--subject", help="the subject id (sub) the services log (default: local-<role>)")
    token.add_argument("--minutes", type=float, default=60, help="how long it is valid (default: 60)")
    token.add_argument("--var", type=Path, default=Path("var"), help="folder of stack.env (default: ./var)")

    dlq = commands.add_parser("dlq", help="dead letters: messages no consumer could handle")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    kafka = ("--kafka", "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    listing = dlq_commands.add_parser(
        "list", help="every dead letter with its reason (headers only)", epilog=CONNECTIONS % kafka[1] + KAFKA_SIGN_IN
    )
    listing.add_argument("--service", help="only those dead-lettered by this service, e.g. notifications")
    listing.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    _dlq_topic(listing)
    _connection(listing, *kafka)
    replay = dlq_commands.add_parser(
        "replay",
        help="publish dead letters again to their original topic, key and headers",
        epilog=CONNECTIONS % kafka[1] + KAFKA_SIGN_IN,
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", type=int, action="append", help="offset in the dead-letter topic; repeatable")
    which.add_argument("--all", action="store_true", help="every dead letter (of --service, if given)")
    replay.add_argument("--service", help="only those dead-lettered by this service")
    _dlq_topic(replay)
    _connection(replay, *kafka)

    topics = commands.add_parser("topics", help="the Kafka topics of quartier_shared.topics")
    topics_commands = topics.add_subparsers(dest="topics_command", required=True)
    apply = topics_commands.add_parser(
        "apply",
        help="create the missing topics and align the settings of the others, then compare what the broker "
        "reports (exit 3 when it differs); needs a principal that may create and alter topics",
        epilog=CONNECTIONS % kafka[1] + KAFKA_SIGN_IN,
    )
    apply.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    apply.add_argument(
        "--dead-letter-days",
        type=_dead_letter_days,
        default=os.environ.get("DEAD_LETTER_RETENTION_DAYS", str(DEAD_LETTERS_RETENTION_DAYS)),
        help="how long the dead-letter topics keep a record, as the services' DEAD_LETTER_RETENTION_DAYS "
        "(default: that variable, else %(default)s)",
    )
    _connection(apply, *kafka)

    erasures = commands.add_parser("erasures", help="the ledger of erased actors (quartier.actors), for restores")
    erasures_commands = erasures.add_subparsers(dest="erasures_command", required=True)
    ledger = erasures_commands.add_parser(
        "list", help="every erased actor id and when (ids only)", epilog=CONNECTIONS % kafka[1] + KAFKA_SIGN_IN
    )
    ledger.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    _connection(ledger, *kafka)
    reapply = erasures_commands.add_parser(
        "reapply",
        help="after a database restore: erase every actor of the ledger again (actors over HTTP, then "
        "ActorErased published again for the other services; needs the admin principal)",
        epilog=CONNECTIONS % kafka[1] + KAFKA_SIGN_IN + f" Token: --token, else ${TOKEN_VARIABLE}, else one for "
        "`make run`; the actors URL: --actors-url, else $QUARTIER_ACTORS_URL, else make run's.",
    )
    reapply.add_argument("--token", help=f"a bearer token with the role data_protection (default: ${TOKEN_VARIABLE})")
    reapply.add_argument("--actors-url", metavar="URL", help="default: $QUARTIER_ACTORS_URL, then make run's")
    reapply.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    _connection(reapply, *kafka)

    images = commands.add_parser("images", help="the container images deploy/ names")
    images_commands = images.add_subparsers(dest="images_command", required=True)
    lock = images_commands.add_parser(
        "lock",
        help="resolve each pinned tag to its registry's digest and write deploy/images.lock (needs the network)",
    )
    lock.add_argument("--deploy", type=Path, default=Path("deploy"), help="the deploy folder (default: ./deploy)")

    outbox = commands.add_parser("outbox", help="events stored but not yet relayed to Kafka")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    status = outbox_commands.add_parser(
        "status",
        help="entries waiting per service database, and the oldest one's age",
        epilog=CONNECTIONS % "MONGODB_URI",
    )
    status.add_argument(
        "--database", action="append", metavar="NAME", help="database to look at; repeatable (default: the services')"
    )
    status.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    _connection(status, "--mongodb", "MONGODB_URI", "'mongodb://127.0.0.1:27017/?replicaSet=rs0'")

    privacy = commands.add_parser("privacy", help="an actor's personal data (GDPR)")
    privacy_commands = privacy.add_subparsers(dest="privacy_command", required=True)
    export = privacy_commands.add_parser(
        "export",
        help="everything the three services hold about an actor, in one JSON file (Art. 15)",
        epilog="token: --token, else $QUARTIER_TOKEN, else one minted for `make run` from var/; "
        "URLs: the flags, else $QUARTIER_<SERVICE>_URL, else make run's ports",
    )
    export.add_argument("actor_id", metavar="ACTOR_ID")
    export.add_argument("--out", type=Path, help="the file to write (default: ./quartier-export-ACTOR_ID.json)")
    export.add_argument("--token", help=f"a bearer token with the role data_protection (default: ${TOKEN_VARIABLE})")
    for name in PARTS:
        export.add_argument(f"--{name}-url", metavar="URL", help=f"default: ${url_variable(name)}, then make run's")
    export.add_argument("--var", type=Path, default=Path("var"), help="folder of stack.env (default: ./var)")
    return parser


def _token(args: argparse.Namespace) -> str:
    from quartier_shared.catalogue import load_catalogue

    from .common import USAGE, read_stack_env
    from .issuer import LocalIssuer

    issuer = LocalIssuer.from_env(read_stack_env(args.var))
    if issuer is None:
        raise OperatorError(
            f"no local issuer in {args.var / run_module.STACK_ENV}: start `make run` (its services trust "
            "only tokens of this key; a stack with AUTH_ISSUER set takes tokens of that identity provider)",
            USAGE,
        )
    districts = [d.upper() for d in args.district]
    unknown = sorted(set(districts) - load_catalogue().district_codes)
    if unknown:
        raise OperatorError(f"unknown district {', '.join(unknown)} (see GET /districts)", USAGE)
    if QUARTER_MANAGER in args.role and not districts:
        raise OperatorError("a quarter manager needs --district (e.g. --district IV)", USAGE)
    if args.minutes <= 0:
        raise OperatorError("--minutes must be positive", USAGE)
    subject = args.subject or f"local-{'-'.join(args.role)}"
    return issuer.token(args.role, districts, subject=subject, minutes=args.minutes)


def _operate(args: argparse.Namespace) -> str:
    if args.command == "token":
        return _token(args)
    if args.command == "privacy":
        from . import privacy_export

        urls = privacy_export.service_urls({name: getattr(args, f"{name}_url") for name in PARTS})
        gatherer = privacy_export.Gatherer(privacy_export.bearer_token(args.token, args.var), urls)
        return privacy_export.export_command(args.actor_id, args.out, gatherer)
    if args.command == "dlq":
        from . import dlq

        kafka = kafka_address(args.kafka, args.var)
        topic = dlq.DLQ_TOPICS[args.topic]
        if args.dlq_command == "list":
            return dlq.list_command(kafka, args.service, args.json, topic)
        return dlq.replay_command(kafka, None if args.all else args.offset, args.service, topic)
    if args.command == "erasures":
        from . import erasures, privacy_export

        kafka = kafka_address(args.kafka, args.var)
        if args.erasures_command == "list":
            return erasures.list_command(kafka, args.json)
        actors_url = privacy_export.service_urls({"actors": args.actors_url})["actors"]
        token = privacy_export.bearer_token(args.token, args.var)
        return erasures.reapply_command(kafka, actors_url, token, args.json)
    if args.command == "images":
        from . import images

        return images.lock_command(args.deploy)
    if args.command == "topics":
        from . import topics

        return topics.apply_command(kafka_address(args.kafka, args.var), args.json, args.dead_letter_days)
    from . import outbox_status

    mongodb = resolve("MongoDB", "--mongodb", args.mongodb, "MONGODB_URI", args.var)
    databases = args.database or list(outbox_status.DEFAULT_DATABASES)
    return outbox_status.status_command(mongodb, databases, args.json)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run_module.run(args.var.resolve(), args.base_port)
    try:
        print(_operate(args), flush=True)
    except OperatorError as exc:
        print(f"quartier: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `quartier dlq list | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
