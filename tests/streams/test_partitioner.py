"""The worker's partitioner agrees with Kafka's default partitioner as aiokafka implements it."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from streams.worker.partitioner import key_hash, partition_for_key


def test_partitions_agree_with_kafkas_default_partitioner_also_when_cached() -> None:
    rng = random.Random(13)
    keys = [f"user-{rng.randrange(10**9)}".encode() for _ in range(500)] + [b"", "Zoë".encode()]
    reference = DefaultPartitioner()
    for partitions in (1, 4, 24, 7):
        every = list(range(partitions))
        for _ in range(2):  # the second round answers from the cache
            assert [partition_for_key(k, partitions) for k in keys] == [reference(k, every, every) for k in keys]
    assert key_hash.cache_info().hits > 0
