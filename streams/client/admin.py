"""The idempotent admin step that creates the topics profilestream needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from streams.contract.events import EVENT_TYPES
from streams.contract.topics import DEADLETTER, ERASURE, MODEL_ITEMS, PROFILES, input_topic
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic the service owns: its name and configuration."""

    name: str
    partitions: int
    configs: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic profilestream needs, with the prefix applied.

    The input topics share one partition count so one user's events land on the same partition number
    everywhere (co-partitioning). ``profiles.updated`` is compacted: a consumer that reads it from the start
    holds every user's latest profile; tombstones are kept a day so slow consumers still see deletions.
    ``models.items`` is compacted too: every published model version's item vectors stay until tombstoned.
    """
    p = settings.partitions
    specs = [TopicSpec(settings.topic(input_topic(t)), p, {}) for t in EVENT_TYPES]
    specs.append(TopicSpec(settings.topic(DEADLETTER), p, {"retention.ms": str(30 * 24 * 3600 * 1000)}))
    specs.append(TopicSpec(settings.topic(ERASURE), p, {}))
    specs.append(
        TopicSpec(
            settings.topic(PROFILES),
            p,
            {
                "cleanup.policy": "compact",
                "delete.retention.ms": str(24 * 3600 * 1000),
                "min.compaction.lag.ms": "0",
                "segment.ms": str(3600 * 1000),
            },
        )
    )
    specs.append(
        TopicSpec(
            settings.topic(MODEL_ITEMS),
            p,
            {"cleanup.policy": "compact", "delete.retention.ms": str(24 * 3600 * 1000), "segment.ms": str(3600 * 1000)},
        )
    )
    return specs


def create_topics(settings: Settings, timeout_ms: int = 30_000) -> dict[str, str]:
    """Create the topics that do not exist yet; returns each topic's outcome ('created' or 'exists').

    Idempotent: running it twice changes nothing. An existing topic with another partition count is reported
    as an error, since co-partitioning would silently break.
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id=f"{settings.app_id}-admin")
    try:
        present = set(admin.list_topics())
        wanted = [s.name for s in topic_specs(settings) if s.name in present]
        counts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(wanted)} if wanted else {}
        outcome: dict[str, str] = {}
        for spec in topic_specs(settings):
            if spec.name in counts:
                if counts[spec.name] != spec.partitions:
                    raise RuntimeError(
                        f"topic {spec.name} has {counts[spec.name]} partitions, expected {spec.partitions}; "
                        "all profilestream topics must share one partition count"
                    )
                outcome[spec.name] = "exists"
                continue
            request = {
                spec.name: {
                    "num_partitions": spec.partitions,
                    "replication_factor": settings.replication_factor,
                    "configs": spec.configs,
                }
            }
            try:
                admin.create_topics(request, timeout_ms=timeout_ms, wait_for_metadata=True)
                outcome[spec.name] = "created"
            except TopicAlreadyExistsError:
                outcome[spec.name] = "exists"
            log.info("topic %s: %s", spec.name, outcome[spec.name])
        return outcome
    finally:
        admin.close()
