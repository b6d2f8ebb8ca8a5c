"""Publish a model version's item vectors to the compacted ``models.items`` topic (streams/contract/items.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer

from streams.contract.items import ItemsManifest, ItemVector, item_key, manifest_key
from streams.contract.topics import MODEL_ITEMS


def publish_item_vectors(
    bootstrap_servers: str,
    model_version: str,
    item_ids: Sequence[str],
    vectors: Sequence[Sequence[float]],
    *,
    topic_prefix: str = "",
    timeout_s: float = 120.0,
    **kafka_config: Any,
) -> ItemsManifest:
    """Send one record per item, then the manifest, and wait until the broker acknowledged all of them.

    ``item_ids`` come in vocabulary order (their position is the item's ``rank``). Publishing the same version
    again rewrites the same keys, so it is idempotent. Raises ``ValueError`` for ragged or empty input and
    kafka-python's errors when the broker does not acknowledge.
    """
    if len(item_ids) != len(vectors):
        raise ValueError("item_ids and vectors differ in length")
    if not item_ids:
        raise ValueError("a model version without items cannot be published")
    dim = len(vectors[0])
    if len(set(item_ids)) != len(item_ids):
        raise ValueError("item ids are not unique")
    topic = f"{topic_prefix}{MODEL_ITEMS}"
    config: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "client_id": "profilestream-items",
    }
    config.update(kafka_config)
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **config)
    try:
        futures = []
        for rank, (item_id, vector) in enumerate(zip(item_ids, vectors, strict=True)):
            if len(vector) != dim:
                raise ValueError(f"vector of rank {rank} has dimension {len(vector)}, expected {dim}")
            record = ItemVector(model_version, item_id, rank, [float(x) for x in vector])
            futures.append(producer.send(topic, key=item_key(model_version, item_id), value=record.to_bytes()))
        # The manifest goes last and only after every item is acknowledged, so a reader that sees it can count on
        # the items being on the topic (they may sit in other partitions it has not read yet).
        producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)
        manifest = ItemsManifest(model_version, dim, len(item_ids), time.time_ns() // 1_000_000)
        producer.send(topic, key=manifest_key(model_version), value=manifest.to_bytes()).get(timeout=timeout_s)
        return manifest
    finally:
        producer.close()
