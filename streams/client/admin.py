"""The idempotent admin step that creates the topics profilestream needs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from streams.client.erasure_bound import compaction_configs, input_retention_configs, time_bound_configs
from streams.client.security import kafka_client_options
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import (
    DEADLETTER,
    ERASURE,
    IMPRESSIONS,
    MODEL_ITEMS,
    PROFILES,
    input_topic,
    state_changelog,
)
from streams.settings import Settings

log = logging.getLogger(__name__)


class TopicsMismatchError(RuntimeError):
    """A topic exists with another partition count than the settings ask for: every profilestream topic must share
    one (a user's events, state and profile live in the same partition number)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic the service owns: its name and configuration."""

    name: str
    partitions: int
    configs: dict[str, str]
    enforced: bool = False
    """The configs are set on an existing topic too (they carry a promise, such as the erasure bound)."""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic profilestream needs, with the prefix applied (the state changelog is named after the app id).

    The input topics share one partition count so one user's events land on the same partition number
    everywhere (co-partitioning). ``profiles.updated`` and the workers' state changelog are compacted: a consumer
    that reads them from the start holds every user's latest value; an erased user's older values are compacted
    away within the erasure bound, and tombstones are kept for half of it so slow consumers still see deletions.
    ``events.deadletter`` and ``events.impression`` (who was shown what) delete every record within the erasure
    bound. Those four carry the bound, so their configs are set on an existing topic too. ``models.items`` is
    compacted: every published model version's item vectors stay until tombstoned. ``events.impression`` shares
    the inputs' partition count, so a user's impressions and clicks meet in one feedback consumer.
    """
    p = settings.partitions
    # The inputs keep the broker's retention unless input_retention_ms asks for a shorter one (the erasure bound).
    inputs = input_retention_configs(settings)
    specs = [TopicSpec(settings.topic(input_topic(t)), p, inputs, enforced=bool(inputs)) for t in EVENT_TYPES]
    # Raw bytes of rejected messages, personal data included: deleted by time within the erasure bound.
    specs.append(TopicSpec(settings.topic(DEADLETTER), p, time_bound_configs(settings), enforced=True))
    specs.append(TopicSpec(settings.topic(ERASURE), p, {}))
    # Compacted within the erasure bound (streams.client.erasure_bound); tombstones stay half of it.
    specs.append(TopicSpec(settings.topic(PROFILES), p, compaction_configs(settings), enforced=True))
    # Faust creates the changelog with these configs when it is missing, but never changes an existing one.
    specs.append(TopicSpec(state_changelog(settings.app_id), p, compaction_configs(settings), enforced=True))
    specs.append(
        TopicSpec(
            settings.topic(MODEL_ITEMS),
            p,
            {"cleanup.policy": "compact", "delete.retention.ms": str(24 * 3600 * 1000), "segment.ms": str(3600 * 1000)},
        )
    )
    # Who was shown what is personal data too: deleted by time within the erasure bound, like the dead letters.
    specs.append(TopicSpec(settings.topic(IMPRESSIONS), p, time_bound_configs(settings), enforced=True))
    return specs


def _set_configs(admin: KafkaAdminClient, spec: TopicSpec) -> None:
    """Set ``spec.configs`` on the existing topic, leaving its other configs as they are (incremental alter)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=dict(spec.configs))
    result = admin.alter_configs([resource], incremental=True)
    # kafka-python answers each resource with "OK" or the broker's error as text.
    for answers in result.values():
        for name, answer in answers.items():
            if str(answer) != "OK":
                raise RuntimeError(f"could not set the configs of topic {name}: {answer}")
    log.info("topic %s: configs set (%s)", spec.name, ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items())))


def partition_counts(admin: KafkaAdminClient, topics: Iterable[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` that exists (the others are left out)."""
    present = set(admin.list_topics())
    wanted = [t for t in topics if t in present]
    # Only named topics: describe_topics([]) would describe every topic of the cluster.
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(wanted)} if wanted else {}


def create_topics(settings: Settings, timeout_ms: int = 30_000) -> dict[str, str]:
    """Create the topics that do not exist yet; returns each topic's outcome ('created' or 'exists').

    Idempotent: running it twice changes nothing. An existing topic with another partition count is reported
    as an error, since co-partitioning would silently break. An existing topic whose configs carry a promise
    (the erasure bound: ``profiles.updated``, the state changelog, ``events.deadletter``) gets them set again,
    its other configs left as they are.
    """
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-admin",
        **kafka_client_options(settings),
    )
    try:
        counts = partition_counts(admin, [s.name for s in topic_specs(settings)])
        outcome: dict[str, str] = {}
        for spec in topic_specs(settings):
            if spec.name in counts:
                if counts[spec.name] != spec.partitions:
                    raise TopicsMismatchError(
                        f"topic {spec.name} has {counts[spec.name]} partitions, expected {spec.partitions}; "
                        "all profilestream topics must share one partition count"
                    )
                outcome[spec.name] = "exists"
                if spec.enforced:
                    _set_configs(admin, spec)
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
