"""The shipped Grafana dashboards and Prometheus files: valid, and querying only real metrics.

A dashboard that queries a misspelt metric shows "No data" forever and an alert on one never
fires, and neither says why. So every PromQL expression here is parsed for metric names,
and each name must be one the code exports: the serving registry
(:class:`~conveyor.serving.metrics.ServingMetrics`) or the monitoring collector.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from conveyor.monitoring.exporter import GAUGES, MonitoringCollector
from conveyor.serving.metrics import ServingMetrics
from conveyor.testing.prometheus import PrometheusError, find_or_install

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
PROMETHEUS = DEPLOY / "prometheus"
#: Series Prometheus makes itself for every target; not exported by any code of ours.
PROMETHEUS_SERIES = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
KEYWORDS |= {"unless", "offset", "inf", "nan"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_names() -> set[str]:
    """Sample names the serving registry and the monitoring collector can expose."""
    names = {spec.name for spec in GAUGES.values()}
    for family in ServingMetrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MonitoringCollector(list))
    names.update(family.name for family in registry.collect())
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, labels or keywords."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # a number's exponent or a duration's unit (1e3, 7d)
        if text[match.end() :].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue  # a function or aggregation, or a keyword
        found.add(match.group())
    return found


def variable_query_names(query: str) -> set[str]:
    """Metric names in a Grafana ``label_values(metric{...}, label)`` query."""
    match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
    assert match, f"unexpected variable query {query!r}"
    return metric_names(match.group(1))


def dashboard_expressions(dashboard: dict) -> list[str]:
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def rule_expressions() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_name_parser_finds_metrics_and_only_metrics() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, model) (rate("
        'conveyor_serving_request_duration_seconds_bucket{code=~"5.."}[$__rate_interval])))'
        " / on(model) group_left sum(x_total offset 7d) > 1e3 and bool time() - y"
    )
    assert metric_names(expr) == {"conveyor_serving_request_duration_seconds_bucket", "x_total", "y"}


def test_there_are_two_dashboards() -> None:
    assert [p.name for p in DASHBOARDS] == ["monitoring.json", "serving.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_and_templated_on_model_and_version(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["schemaVersion"] >= 38
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for name in ("model", "version"):
        assert variables[name]["type"] == "query"
        assert variables[name]["query"]["query"].startswith("label_values(")
        assert variables[name]["query"]["query"].endswith(f", {name})")
    assert "$model" in variables["version"]["query"]["query"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
    for expr in dashboard_expressions(dashboard):
        assert 'model=~"$model"' in expr or "collect_success" in expr, expr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_use_exported_metric_names(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    exported = exported_names()
    for expr in dashboard_expressions(dashboard):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{path.name}: {sorted(names - exported)} not exported ({expr})"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable_query_names(variable["query"]["query"]) <= exported


def test_monitoring_dashboard_shows_every_monitoring_gauge() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "monitoring.json").read_text())
    used = set().union(*(metric_names(e) for e in dashboard_expressions(dashboard)))
    assert {spec.name for spec in GAUGES.values()} <= used


def test_alert_rules_use_exported_metric_names() -> None:
    exported = exported_names() | PROMETHEUS_SERIES
    expressions = rule_expressions()
    assert len(expressions) >= 6
    for expr in expressions:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{sorted(names - exported)} not exported ({expr})"


def test_prometheus_config_scrapes_tracking_and_serving() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"conveyor-tracking", "conveyor-serving"}
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return find_or_install("promtool")
    except PrometheusError as exc:
        pytest.skip(f"promtool is not installed and cannot be installed here: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
    ids=" ".join,
)
def test_promtool_accepts_the_files(promtool: Path, args: list[str]) -> None:
    result = subprocess.run(
        [str(promtool), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
