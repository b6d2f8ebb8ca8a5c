"""Topic settings that bound how long an erased user's old values stay readable in the compacted topics.

A compacted topic (``profiles.updated``, the worker table's changelog) keeps a user's older values until the log
cleaner runs over them, and with Kafka's defaults that is when half the partition is dirty: days on a quiet topic.
``max.compaction.lag.ms`` makes the cleaner take any record older than it, and lowers the time after which the
segment being written is rolled (only a rolled segment is cleaned); ``delete.retention.ms`` is how long the
tombstone itself, which still carries the user id as its key, stays after its first cleaning. Each gets half the
bound. The roll happens when a record is appended, so the bound holds for a partition that keeps receiving
records, as the service's topics do (docs/security.md).

The dead-letter topic keeps the original bytes of rejected messages, personal data included, so it is not
compacted but deleted by time within the bound (:func:`time_bound_configs`).
"""

from __future__ import annotations

from streams.settings import Settings

PROFILE_SEGMENT_MS = 3600 * 1000
"""Longest a segment of a compacted topic (or of the dead-letter topic) stays open when the bound allows more."""


def compaction_configs(settings: Settings) -> dict[str, str]:
    """Topic configs of a compacted topic that holds personal data, for the settings' erasure bound."""
    half_ms = max(1, settings.erasure_bound_ms // 2)
    return {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": "0",
        "max.compaction.lag.ms": str(half_ms),
        "segment.ms": str(min(PROFILE_SEGMENT_MS, half_ms)),
        "delete.retention.ms": str(half_ms),
    }


def time_bound_configs(settings: Settings) -> dict[str, str]:
    """Topic configs of the topics deleted by time (dead letters, impressions): every record deleted within the
    settings' erasure bound.

    A segment is deleted once its newest record is older than ``retention.ms`` (half the bound), and a segment
    takes records for at most ``segment.ms`` (a quarter of the bound, at most an hour), so a dead letter lives at
    most three quarters of the bound plus the broker's retention check interval
    (``log.retention.check.interval.ms``, 5 min by default). The broker stamps each record with its append time:
    a producer's timestamp from the future must not keep a segment alive.
    """
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(max(1, settings.erasure_bound_ms // 2)),
        "segment.ms": str(min(PROFILE_SEGMENT_MS, max(1, settings.erasure_bound_ms // 4))),
        "message.timestamp.type": "LogAppendTime",
    }


def input_retention_configs(settings: Settings) -> dict[str, str]:
    """Topic configs of the input topics: none unless ``input_retention_ms`` is set; then records are deleted
    that long after they were written, in segments of at most half of it (and at most an hour).

    An event then lives at most ``input_retention_ms`` plus ``segment.ms`` plus the broker's retention check
    interval; with ``input_retention_ms`` at most a third of the erasure bound, within the bound.
    """
    if settings.input_retention_ms is None:
        return {}
    retention_ms = settings.input_retention_ms
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention_ms),
        "segment.ms": str(min(PROFILE_SEGMENT_MS, max(1, retention_ms // 2))),
        "message.timestamp.type": "LogAppendTime",
    }
