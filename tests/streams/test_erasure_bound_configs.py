"""The compaction settings the erasure bound chooses for the compacted topics."""

from __future__ import annotations

from streams.client.admin import topic_specs
from streams.client.erasure_bound import PROFILE_SEGMENT_MS, compaction_configs
from streams.contract.topics import PROFILES
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


def test_the_profile_topic_is_created_with_them() -> None:
    settings = load_settings(erasure_bound_ms=10 * 60_000, topic_prefix="x.")
    [profiles] = [spec for spec in topic_specs(settings) if spec.name == f"x.{PROFILES}"]
    assert profiles.configs == compaction_configs(settings)
