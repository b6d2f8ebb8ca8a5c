"""RecordCache: least-recently-used eviction, capacity 0, forgetting."""

from __future__ import annotations

import pytest

from state.record import UserState
from state.record_cache import RecordCache


def test_the_least_recently_used_user_is_evicted_beyond_capacity() -> None:
    cache = RecordCache(2)
    a, b, c = UserState.new(), UserState.new(), UserState.new()
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # "a" is now the most recently used
    cache.put("c", c)
    assert cache.get("b") is None
    assert cache.get("a") is a and cache.get("c") is c
    assert len(cache) == 2


def test_capacity_zero_caches_nothing_and_negative_is_refused() -> None:
    cache = RecordCache(0)
    cache.put("a", UserState.new())
    assert cache.get("a") is None and len(cache) == 0
    with pytest.raises(ValueError, match="capacity"):
        RecordCache(-1)


def test_discard_and_clear_forget_users() -> None:
    cache = RecordCache(10)
    for user in ("a", "b", "c"):
        cache.put(user, UserState.new())
    cache.discard("b")
    cache.discard("never-cached")
    assert cache.get("b") is None and len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_lookups_are_counted_as_hits_and_misses() -> None:
    cache = RecordCache(10)
    cache.put("a", UserState.new())
    for user in ("a", "b", "a", "c"):
        cache.get(user)
    assert (cache.hits, cache.misses) == (2, 2)
