"""Settings bounded by other software: every value the settings accept must also be one a worker can start with."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
from annotated_types import Le
from pydantic import ValidationError

from streams.settings import Settings, load_settings
from streams.worker.app import build_faust_app
from streams.worker.faust_seam import FAUST_FETCH_MAX_WAIT_MS

REPO_ROOT = Path(__file__).resolve().parents[2]


def upper_limit(name: str) -> float:
    limits = [m.le for m in Settings.model_fields[name].metadata if isinstance(m, Le)]
    assert len(limits) == 1, name
    return float(limits[0])  # type: ignore[arg-type]


def test_the_longest_session_timeout_accepted_is_one_faust_starts_a_consumer_with(tmp_path: Path) -> None:
    # faust refuses a session timeout above its Kafka request timeout when it creates the consumer, i.e. only
    # once the worker starts; the settings refuse it at once.
    longest = upper_limit("consumer_session_timeout_s")
    settings = load_settings(consumer_session_timeout_s=longest, state_dir=tmp_path)
    conf = build_faust_app(settings).conf
    assert conf.broker_session_timeout == longest
    assert conf.broker_session_timeout <= conf.broker_request_timeout
    with pytest.raises(ValidationError):
        load_settings(consumer_session_timeout_s=longest + 1)
    with pytest.raises(ValidationError):
        load_settings(consumer_session_timeout_s=5)  # under the broker's group.min.session.timeout.ms


def test_the_session_timeout_is_in_the_settings_table() -> None:
    docs = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    row = re.search(
        r"^\| consumer_session_timeout_s \| `PROFILESTREAM_CONSUMER_SESSION_TIMEOUT_S` \| `([\d.]+)` \|(.*)$",
        docs,
        flags=re.MULTILINE,
    )
    assert row is not None
    assert float(row.group(1)) == Settings.model_fields["consumer_session_timeout_s"].default
    assert f"to {upper_limit('consumer_session_timeout_s'):g}:" in row.group(2)


def test_every_setting_has_its_variable_in_the_settings_table() -> None:
    # The README says docs/operations.md lists every setting and its variable; eighteen were missing once.
    docs = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in docs.splitlines() if line.startswith("| "))
    missing = [name for name in Settings.model_fields if f"`PROFILESTREAM_{name.upper()}`" not in table]
    assert missing == []


@pytest.mark.parametrize(
    ("overrides", "host"),
    [
        ({}, "127.0.0.1"),  # the local default bind: the other local workers reach it there
        ({"web_bind": "10.1.2.3"}, "10.1.2.3"),
        ({"web_bind": "0.0.0.0"}, socket.gethostname()),
        ({"web_bind": "0.0.0.0", "web_host": "w-0.profilestream"}, "w-0.profilestream"),
    ],
)
def test_the_lookup_is_forwarded_to_a_url_the_other_workers_can_reach(
    overrides: dict[str, str], host: str, tmp_path: Path
) -> None:
    conf = build_faust_app(load_settings(state_dir=tmp_path, web_port=7001, **overrides)).conf
    assert str(conf.canonical_url) == f"http://{host}:7001"


def test_no_float_setting_takes_infinity_or_nan() -> None:
    # "inf" passes gt=0: a commit, expiry or purge interval, or a timeout, that never ends.
    floats = [name for name, field in Settings.model_fields.items() if field.annotation in (float, float | None)]
    assert "commit_interval_s" in floats and len(floats) > 5
    for name in floats:
        for text in ("inf", "1e400", "nan"):
            with pytest.raises(ValidationError, match="finite"):
                Settings(**{name: text})  # type: ignore[arg-type]


def test_the_worker_s_consumer_fetch_wait_is_the_setting_within_faust_s_own(tmp_path: Path) -> None:
    # faust fixes 1,500 ms; the setting reaches the worker's consumer, defaults to faust's value (shorter waits
    # slowed drains of two workers, docs/performance.md) and may not exceed it.
    default = load_settings(state_dir=tmp_path).consumer_fetch_max_wait_ms
    assert default == upper_limit("consumer_fetch_max_wait_ms") == FAUST_FETCH_MAX_WAIT_MS
    for wait_ms in (default, 1, 100):
        app = build_faust_app(load_settings(state_dir=tmp_path, consumer_fetch_max_wait_ms=wait_ms))
        consumer: Any = app.consumer
        assert consumer.fetch_max_wait_ms == wait_ms
    for refused in (0, 1501):
        with pytest.raises(ValidationError):
            load_settings(consumer_fetch_max_wait_ms=refused)


def test_the_busy_fetch_wait_reaches_the_consumer_and_defaults_to_a_short_one(tmp_path: Path) -> None:
    assert upper_limit("consumer_fetch_wait_while_busy_ms") == FAUST_FETCH_MAX_WAIT_MS
    consumer: Any = build_faust_app(load_settings(state_dir=tmp_path)).consumer
    assert (consumer.fetch_max_wait_ms, consumer.fetch_wait_while_busy_ms) == (FAUST_FETCH_MAX_WAIT_MS, 50)
    app = build_faust_app(load_settings(state_dir=tmp_path, consumer_fetch_wait_while_busy_ms=1500))
    consumer = app.consumer
    assert (consumer.fetch_max_wait_ms, consumer.fetch_wait_while_busy_ms) == (FAUST_FETCH_MAX_WAIT_MS, 1500)
    for refused in (0, 1501):
        with pytest.raises(ValidationError):
            load_settings(consumer_fetch_wait_while_busy_ms=refused)


def test_the_standby_replicas_reach_faust_and_default_to_faust_s_one(tmp_path: Path) -> None:
    assert build_faust_app(load_settings(state_dir=tmp_path)).conf.table_standby_replicas == 1
    assert build_faust_app(load_settings(state_dir=tmp_path, standby_replicas=0)).conf.table_standby_replicas == 0
    with pytest.raises(ValidationError):
        load_settings(standby_replicas=-1)


def test_the_rebalance_settle_time_reaches_faust(tmp_path: Path) -> None:
    assert build_faust_app(load_settings(state_dir=tmp_path)).conf.stream_recovery_delay == 0.5
    app = build_faust_app(load_settings(state_dir=tmp_path, rebalance_settle_s=8))
    assert app.conf.stream_recovery_delay == 8.0
    for refused in (-1, 61):
        with pytest.raises(ValidationError):
            load_settings(rebalance_settle_s=refused)
