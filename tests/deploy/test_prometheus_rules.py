"""deploy/prometheus: the rules and configs pass promtool, every alert is unit-tested both ways, links a
runbook section, and reads only metrics that WorkerMetrics, the recommender's RecommendMetrics or the feedback
consumer's FeedbackMetrics expose.

promtool comes from Debian's `prometheus` package (`make promtool`); without it these tests fail.
The helpers at the top are shared with test_dashboard.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from streams.contract.decoder import Reason
from streams.feedback.join import ClickedAt, Shown
from streams.feedback.metrics import FeedbackMetrics
from streams.recommend.metrics import RecommendMetrics
from streams.worker.metrics import WorkerMetrics

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERT_RULES = RULES_DIR / "profilestream.rules.yml"
RECORDING_RULES = RULES_DIR / "profilestream.recording.yml"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"
PROMTOOL_TIMEOUT_S = 120

# Metric names that come from Prometheus itself rather than from the worker.
PROMETHEUS_METRICS = frozenset({"up"})

_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
)
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS_AND_RANGES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def promtool() -> str:
    """The promtool binary; fails the test (never skips) when it is not installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make promtool` (Debian's prometheus package)")
    return path


def run_promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool with `args`; the caller asserts on the return code and output."""
    return subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, text=True, check=False, timeout=PROMTOOL_TIMEOUT_S
    )


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def all_rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules(ALERT_RULES) if "alert" in rule]


def recorded_names() -> set[str]:
    """Names of the recording rules, usable by alerts and dashboards like metrics."""
    return {rule["record"] for path in sorted(RULES_DIR.glob("*.yml")) for rule in all_rules(path) if "record" in rule}


def exposed_metric_names() -> set[str]:
    """Every sample name a worker or the recommender can expose, including label-only series that start empty."""
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    RecommendMetrics(registry)
    FeedbackMetrics(registry)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def metric_names_in(expr: str) -> set[str]:
    """The metric (and recording-rule) names a PromQL expression reads.

    Strings, label matchers, ranges and grouping clauses are removed first; what is left that is an
    identifier, not a keyword and not followed by `(` (a function or aggregation) is a metric name.
    """
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS_AND_RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _PROMQL_KEYWORDS}


def github_anchor(heading: str) -> str:
    """The anchor GitHub generates for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    text = RUNBOOKS.read_text(encoding="utf-8")
    return {github_anchor(match) for match in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)}


# -- promtool ---------------------------------------------------------------------------------------


def test_rule_files_pass_promtool_check() -> None:
    files = [str(path) for path in sorted(RULES_DIR.glob("*.yml"))]
    assert len(files) == 2
    done = run_promtool("check", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_unit_tests_pass() -> None:
    files = [str(path) for path in sorted(RULE_TESTS_DIR.glob("*.yml"))]
    assert files
    done = run_promtool("test", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout + done.stderr


def test_rule_unit_tests_catch_a_changed_rule(tmp_path: Path) -> None:
    # The same tests against a worker-down rule that waits 30 minutes instead of 2 must fail.
    shutil.copytree(PROMETHEUS_DIR, tmp_path / "prometheus")
    mutated = tmp_path / "prometheus" / "rules" / ALERT_RULES.name
    text = mutated.read_text(encoding="utf-8")
    assert text.count("for: 2m\n") >= 1
    mutated.write_text(text.replace("for: 2m\n", "for: 30m\n", 1), encoding="utf-8")
    done = run_promtool("test", "rules", str(tmp_path / "prometheus" / "tests" / "worker_down_test.yml"))
    assert done.returncode != 0
    assert "ProfilestreamWorkerDown" in done.stdout + done.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.k8s.yml"])
def test_prometheus_configs_pass_promtool_check(config: str) -> None:
    done = run_promtool("check", "config", str(PROMETHEUS_DIR / config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 rule files found" in done.stdout + done.stderr


def test_prometheus_configs_scrape_the_job_the_alerts_expect() -> None:
    for config in ("prometheus.yml", "prometheus.k8s.yml"):
        jobs = [job["job_name"] for job in load_yaml(PROMETHEUS_DIR / config)["scrape_configs"]]
        assert jobs == ["profilestream"], config
    assert 'up{job="profilestream"}' in ALERT_RULES.read_text(encoding="utf-8")


def test_worker_exposition_passes_promtool_metric_lint() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, reject_reasons=[reason.value for reason in Reason])
    metrics.set_lag("events.browse", 0, 3)
    metrics.set_consumed_offset("events.browse", 0, 9)
    metrics.set_model_version("gru-v1")
    metrics.observe_end_to_end_latency_ms([1_000], published_at_ms=1_250)
    metrics.count_infra_retry("store")
    metrics.set_paused(True)
    metrics.set_broker_up(False)
    metrics.count_broker_unreachable()
    done = run_promtool("check", "metrics", stdin=generate_latest(registry).decode())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""  # no lint findings


def test_recommender_exposition_passes_promtool_metric_lint() -> None:
    registry = CollectorRegistry()
    metrics = RecommendMetrics(registry)
    metrics.set_versions({"3e6d72bafdc3420f": 11218}, {"3e6d72bafdc3420f": 0.25})
    metrics.impressions.labels("sent").inc()
    metrics.request_seconds.observe(0.002)
    metrics.requests.labels("ok").inc()
    metrics.fallbacks.labels("no_index").inc()
    done = run_promtool("check", "metrics", stdin=generate_latest(registry).decode())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""  # no lint findings


def test_feedback_exposition_passes_promtool_metric_lint() -> None:
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry)
    metrics.count([Shown("3e6d72bafdc3420f", "profile"), ClickedAt("3e6d72bafdc3420f", "profile", 10)])
    done = run_promtool("check", "metrics", stdin=generate_latest(registry).decode())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""  # no lint findings


# -- coverage and hygiene of the alerts ----------------------------------------------------------------


REQUIRED_ALERTS = {
    "ProfilestreamWorkerDown",
    "ProfilestreamConsumerLagHigh",
    "ProfilestreamConsumerStalled",
    "ProfilestreamDeadLetterRatioHigh",
    "ProfilestreamLatencySLOBurnFast",
    "ProfilestreamLatencySLOBurnSlow",
    "ProfilestreamNoProfilesPublished",
    "ProfilestreamModelLoadFailed",
    "ProfilestreamPublishFailing",
    "ProfilestreamBrokerUnreachable",
    "ProfilestreamProcessingPaused",
    "ProfilestreamModelRolloutStalled",
    "ProfilestreamErasureRequestRejected",
    "ProfilestreamStatePurgeFailing",
    "ProfilestreamRecommendNoIndex",
    "ProfilestreamCtrDrop",
    "ProfilestreamClicksUnattributed",
    "ProfilestreamImpressionsFailing",
    "ProfilestreamFeedbackDown",
}


def test_the_expected_alerts_exist() -> None:
    assert {rule["alert"] for rule in alert_rules()} == REQUIRED_ALERTS


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in sorted(RULE_TESTS_DIR.glob("*.yml")):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert REQUIRED_ALERTS - firing == set(), "alerts never tested firing"
    assert REQUIRED_ALERTS - quiet == set(), "alerts never tested not firing"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_severity_annotations_and_a_runbook_section(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert path == "docs/runbooks.md"
    assert anchor == rule["alert"].lower()
    assert anchor in runbook_anchors(), f"docs/runbooks.md has no section for {rule['alert']}"


def test_rules_read_only_exposed_or_recorded_metrics() -> None:
    known = exposed_metric_names() | recorded_names() | PROMETHEUS_METRICS
    for path in sorted(RULES_DIR.glob("*.yml")):
        for rule in all_rules(path):
            unknown = metric_names_in(rule["expr"]) - known
            assert unknown == set(), f"{rule.get('alert') or rule.get('record')} reads unknown {unknown}"


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(profilestream_end_to_end_latency_seconds_bucket{le=~"1"}[5m])))'
        " and on (job) job:profilestream_events_consumed:rate5m > 1e3"
        ' or label_replace(up, "dst", "$1", "src", "(.*)") offset 10m'
    )
    assert metric_names_in(expr) == {
        "profilestream_end_to_end_latency_seconds_bucket",
        "job:profilestream_events_consumed:rate5m",
        "up",
    }
