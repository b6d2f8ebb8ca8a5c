"""The topic settings the erasure bound chooses: compaction of the compacted topics, retention of the dead letters."""

from __future__ import annotations

from streams.client.admin import topic_specs
from streams.client.erasure_bound import (
    PROFILE_SEGMENT_MS,
    compaction_configs,
    input_retention_configs,
    time_bound_configs,
)
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import DEADLETTER, PROFILES, input_topic, state_changelog
from streams.settings import load_settings

DAY_MS = 24 * 3600 * 1000


def test_a_day_bound_compacts_within_half_a_day_and_keeps_tombstones_half_a_day() -> None:
    configs = compaction_configs(load_settings(erasure_bound_ms=DAY_MS))
    assert configs == {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": "0",
        "max.compaction.lag.ms": str(DAY_MS // 2),
        "segment.ms": str(PROFILE_SEGMENT_MS),
        "delete.retention.ms": str(DAY_MS // 2),
    }


def test_a_short_bound_shortens_the_segments_too() -> None:
    configs = compaction_configs(load_settings(erasure_bound_ms=60_000))
    assert configs["segment.ms"] == configs["max.compaction.lag.ms"] == configs["delete.retention.ms"] == "30000"


def test_the_profile_topic_and_the_changelog_are_created_with_them_and_kept_so() -> None:
    settings = load_settings(erasure_bound_ms=10 * 60_000, topic_prefix="x.", app_id="ps")
    specs = {spec.name: spec for spec in topic_specs(settings)}
    for name in (f"x.{PROFILES}", "ps-user-state-changelog"):
        assert specs[name].configs == compaction_configs(settings)
        assert specs[name].enforced
    assert state_changelog("ps") == "ps-user-state-changelog"


def test_a_dead_letter_lives_at_most_three_quarters_of_a_day_bound() -> None:
    configs = time_bound_configs(load_settings(erasure_bound_ms=DAY_MS))
    assert configs == {
        "cleanup.policy": "delete",
        "retention.ms": str(DAY_MS // 2),
        "segment.ms": str(PROFILE_SEGMENT_MS),
        "message.timestamp.type": "LogAppendTime",
    }
    short = time_bound_configs(load_settings(erasure_bound_ms=6000))
    assert (short["retention.ms"], short["segment.ms"]) == ("3000", "1500")


def test_the_dead_letter_topic_is_created_with_them_and_kept_so() -> None:
    settings = load_settings(erasure_bound_ms=DAY_MS, topic_prefix="x.")
    [spec] = [spec for spec in topic_specs(settings) if spec.name == f"x.{DEADLETTER}"]
    assert spec.configs == time_bound_configs(settings)
    assert spec.enforced


def test_the_input_topics_keep_the_broker_retention_unless_a_shorter_one_is_asked() -> None:
    default = load_settings(topic_prefix="x.")
    inputs = [spec for spec in topic_specs(default) if spec.name in {f"x.{input_topic(t)}" for t in EVENT_TYPES}]
    assert len(inputs) == len(EVENT_TYPES)
    assert all(spec.configs == {} and not spec.enforced for spec in inputs)

    short = load_settings(topic_prefix="x.", input_retention_ms=8 * 3600 * 1000)
    assert input_retention_configs(short) == {
        "cleanup.policy": "delete",
        "retention.ms": str(8 * 3600 * 1000),
        "segment.ms": str(PROFILE_SEGMENT_MS),
        "message.timestamp.type": "LogAppendTime",
    }
    for spec in topic_specs(short):
        if spec.name in {f"x.{input_topic(t)}" for t in EVENT_TYPES}:
            assert spec.configs == input_retention_configs(short)
            assert spec.enforced
