"""The compose profile `observability` (deploy/observability/): Prometheus' configuration and alert
rules checked by promtool (Debian's package `prometheus`, `make promtool`), Alertmanager's by amtool
(`prometheus-alertmanager`), every PromQL expression of the rules and of the Grafana dashboard
parsed by promtool too, and every metric they name one that quartier_shared.metrics exposes.
Without a Docker engine this is the check that the dashboard shows data and the alerts can fire.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from quartier_shared import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OBSERVABILITY = DEPLOY / "observability"
PROMETHEUS = OBSERVABILITY / "prometheus.yml"
ALERTS = OBSERVABILITY / "alerts.yml"
ALERTMANAGER = OBSERVABILITY / "alertmanager.yml"
GRAFANA = OBSERVABILITY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "quartier.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "quartier.yml"
SERVICE_PORTS = {"actors": 8001, "conferences": 8002, "notifications": 8003}
# Series Prometheus itself adds to every target; the rest must be ours.
PROMETHEUS_SERIES = {"up"}
PROMQL_FUNCTIONS_AND_WORDS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right|and|or|unless|le)\b")


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: make promtool (Debian package {package})")
    return found


def check(*args: str | Path, program: str = "promtool") -> subprocess.CompletedProcess[str]:
    executable = tool("amtool", "prometheus-alertmanager") if program == "amtool" else tool("promtool", "prometheus")
    return subprocess.run([executable, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def exposed_series() -> set[str]:
    """The sample names quartier_shared.metrics exposes (a counter's _total, a histogram's _bucket...)."""
    names: set[str] = set()
    for value in vars(metrics).values():
        for family in value.describe() if isinstance(value, Counter | Gauge | Histogram) else ():
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
            else:
                names.add(family.name)
    return names


def series_in(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers followed by a selector, a range or nothing,
    that are no function (a call) or keyword."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    without_grouping = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", without_grouping))
    return {n for n in names if not PROMQL_FUNCTIONS_AND_WORDS.fullmatch(n) and not re.fullmatch(r"\d\w*", n)} - {
        "s",
        "m",
        "h",
        "d",
    }


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


# --- promtool -----------------------------------------------------------------------------------


def test_promtool_accepts_the_configuration_and_the_rules() -> None:
    result = check("check", "config", PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    result = check("check", "rules", ALERTS)
    assert result.returncode == 0 and "SUCCESS: 5 rules found" in result.stdout, result.stdout + result.stderr


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    """promtool parses each panel's query as the expression of a recording rule: PromQL's own parser."""
    exprs = dashboard_exprs()
    recording = {
        "groups": [{"name": "dashboard", "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(recording), encoding="utf-8")
    result = check("check", "rules", path)
    assert result.returncode == 0 and f"SUCCESS: {len(exprs)} rules found" in result.stdout, (
        result.stdout + result.stderr
    )


def test_the_checks_have_teeth(tmp_path: Path) -> None:
    """A broken expression fails promtool, and an unknown metric name fails the name check."""
    broken = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(quartier_outbox_backlog[5m]"}]}]}
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert check("check", "rules", path).returncode != 0
    assert series_in('sum by (job) (rate(quartier_mails_sent_total{outcome="x"}[5m]))') == {"quartier_mails_sent_total"}
    assert "quartier_mails_sent_total" not in exposed_series() and "quartier_mails_total" in exposed_series()
    assert "quartier_handler_duration_seconds_bucket" in exposed_series()


# --- metric names -------------------------------------------------------------------------------


def test_every_metric_the_rules_and_the_dashboard_use_is_one_the_services_expose() -> None:
    known = exposed_series() | PROMETHEUS_SERIES
    for expr in dashboard_exprs() + [rule["expr"] for rule in rules()]:
        assert series_in(expr), expr
        assert series_in(expr) <= known, f"{expr}: {sorted(series_in(expr) - known)} is exposed by no service"


def test_the_jobs_they_name_are_the_scraped_services() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, port in SERVICE_PORTS.items():
        assert jobs[name]["static_configs"] == [{"targets": [f"{name}:{port}"]}], name
    named = set()
    for expr in dashboard_exprs() + [rule["expr"] for rule in rules()]:
        for match in re.finditer(r'job=~?"([^"]+)"', expr):
            named |= set(match[1].split("|"))
    assert named and named <= set(jobs), sorted(named - set(jobs))
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    assert config["rule_files"] == ["alerts.yml"]


# --- alerts -------------------------------------------------------------------------------------


def test_the_alerts_the_operator_needs_exist_and_say_what_to_do() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert {
        "QuartierDeadLetters",
        "QuartierOutboxBacklogGrowing",
        "QuartierConsumerLagGrowing",
        "QuartierSmtpAuthenticationFailed",
    } <= set(by_name)
    assert "quartier_dead_letters_total" in by_name["QuartierDeadLetters"]["expr"]
    assert by_name["QuartierOutboxBacklogGrowing"]["for"] == "5m"
    assert "deriv(quartier_outbox_backlog" in by_name["QuartierOutboxBacklogGrowing"]["expr"]
    assert "deriv(quartier_consumer_lag" in by_name["QuartierConsumerLagGrowing"]["expr"]
    assert 'kind="authentication"' in by_name["QuartierSmtpAuthenticationFailed"]["expr"]
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        # Labels only; an alert never carries a value that could be personal (ids, addresses).
        assert not re.search(r"\$labels\.(?!job\b|topic\b)", json.dumps(rule["annotations"])), name


def test_alertmanager_mails_every_alert_to_the_operator(tmp_path: Path) -> None:
    result = check("check-config", ALERTMANAGER, program="amtool")
    assert result.returncode == 0 and "1 receivers" in result.stdout, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"  # a route to a receiver nobody declared
    broken.write_text(ALERTMANAGER.read_text(encoding="utf-8").replace("receiver: operator", "receiver: nobody"))
    assert check("check-config", broken, program="amtool").returncode != 0
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    receivers = {r["name"]: r for r in config["receivers"]}
    route = config["route"]
    assert route["receiver"] in receivers and not route.get("routes"), "every alert reaches the one receiver"
    [mail] = receivers[route["receiver"]]["email_configs"]
    assert mail["to"].endswith("@quartier.example.org") and mail["send_resolved"] is True
    assert config["global"]["smtp_smarthost"] == "mailpit:1025"


# --- Grafana ------------------------------------------------------------------------------------


def test_grafana_provisions_the_data_source_every_panel_names() -> None:
    [source] = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    board = dashboard()
    assert board["uid"] and board["title"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"] and all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["type"] in {"timeseries", "stat", "table", "bargauge"}
    [provider] = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))["providers"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["grafana"]["volumes"]}
    assert (DEPLOY / mounts[provider["options"]["path"]]).resolve() == DASHBOARD.parent.resolve()
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() == (GRAFANA / "provisioning").resolve()


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = "\n".join(dashboard_exprs())
    for series in (
        'event_type="InvitationIssued"',  # invitations per minute
        "quartier_mails_total",  # delivery outcomes
        "quartier_outbox_backlog",
        "quartier_consumer_lag",
        "quartier_dead_letters_total",
        "quartier_smtp_errors_total",
        "quartier_handler_duration_seconds_bucket",
    ):
        assert series in exprs, series
