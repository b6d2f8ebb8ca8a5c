"""deploy/grafana: every query of the dashboard parses (checked by promtool) and reads only metrics that a
worker exposes or that the recording rules define."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_prometheus_rules import (
    PROMETHEUS_METRICS,
    REPO_ROOT,
    exposed_metric_names,
    metric_names_in,
    recorded_names,
    run_promtool,
)

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "profilestream.json"

# Grafana's built-in interval variables, replaced by a typical value for parsing.
_GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# Dashboard variables only appear inside label matchers (instance=~"$instance").
_DASHBOARD_VARIABLE = re.compile(r"\$\{?\w+\}?")


def load_dashboard() -> dict[str, Any]:
    with DASHBOARD.open(encoding="utf-8") as handle:
        dashboard: dict[str, Any] = json.load(handle)
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query target of the dashboard."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def as_promql(expr: str) -> str:
    """The expression with Grafana's variables replaced, as Prometheus would receive it."""
    for variable, value in _GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    return _DASHBOARD_VARIABLE.sub(".*", expr)


def check_parses(exprs: list[str], tmp_path: Path) -> tuple[int, str]:
    """Let promtool parse every expression, as recording rules of a throw-away rule file."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    done = run_promtool("check", "rules", str(path))
    return done.returncode, done.stdout + done.stderr


def test_dashboard_is_grafana_json_with_unique_panel_ids() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["type"] == "prometheus", panel["title"]


def test_every_query_parses(tmp_path: Path) -> None:
    exprs = [as_promql(expr) for _, expr in expressions(load_dashboard())]
    assert len(exprs) >= 20
    returncode, output = check_parses(exprs, tmp_path)
    assert returncode == 0, output
    assert f"SUCCESS: {len(exprs)} rules found" in output


def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    returncode, output = check_parses(["sum(rate(profilestream_events_consumed_total[5m])"], tmp_path)
    assert returncode != 0
    assert "dashboard.rules.yml" in output


def test_no_grafana_variable_is_left_for_prometheus() -> None:
    for title, expr in expressions(load_dashboard()):
        assert "$" not in as_promql(expr), title


def test_every_query_reads_exposed_or_recorded_metrics() -> None:
    known = exposed_metric_names() | recorded_names() | PROMETHEUS_METRICS
    for title, expr in expressions(load_dashboard()):
        names = metric_names_in(as_promql(expr))
        assert names, f"{title}: no metric found in {expr}"
        assert names - known == set(), f"{title} reads unknown {names - known}"


@pytest.mark.parametrize(
    "metric",
    [
        "profilestream_events_consumed_total",  # throughput
        "profilestream_profiles_published_total",
        "profilestream_end_to_end_latency_seconds_bucket",  # latency
        "profilestream_consumer_lag_messages",  # lag
        "profilestream_broker_up",  # Kafka reachable
        "profilestream_paused",  # paused on an infrastructure fault
        "profilestream_infra_retries_total",  # and which stage retries
        "profilestream_events_rejected_total",  # rejects
        "job:profilestream_deadletter:ratio_rate5m",  # dead letters
        "profilestream_users_in_state",  # state size
        "profilestream_model_info",  # model version
        "profilestream_users_old_model",  # a model rollout's remaining work
    ],
)
def test_dashboard_shows(metric: str) -> None:
    used = set().union(*(metric_names_in(as_promql(expr)) for _, expr in expressions(load_dashboard())))
    assert metric in used
