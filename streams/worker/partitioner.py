"""Kafka's default partitioner (murmur2 of the key), with the hash of recent keys kept.

aiokafka's murmur2 is pure Python, a few microseconds a key, and the worker partitions every user at least twice
a unit of work (the input check, the changelog and profile records): about 2.5 % of the worker's CPU in a drain.
The same users come back, so the hash of the most recent keys is kept.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

CACHED_KEYS = 1 << 17
"""Keys whose hash is kept (about 20 MB at most for user ids of some 40 bytes)."""


@lru_cache(maxsize=CACHED_KEYS)
def key_hash(key: bytes) -> int:
    """The non-negative murmur2 hash Kafka's default partitioner takes the partition from."""
    return int(murmur2(key) & 0x7FFFFFFF)


def partition_for_key(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as the producer SDK and faust use it."""
    return key_hash(key) % partitions
