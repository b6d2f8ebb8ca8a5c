"""A bounded cache of decoded user records, so a user active again soon is not read and decoded again.

Decoding a record costs more than folding an event into it, and active users come back within seconds. The
cache is write-through: the store always holds every record (the worker writes each update), so dropping the
cache, or any entry of it, only costs a later read. Entries are the live records the worker folds into; the
worker drops an entry whenever the stored record may differ from it (a failed fold, an erasure, an expiry, a
rebalance).
"""

from __future__ import annotations

from collections import OrderedDict

from state.record import UserState


class RecordCache:
    """Least-recently-used decoded records, at most ``capacity`` users (0 disables the cache)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._records: OrderedDict[str, UserState] = OrderedDict()
        self.hits = 0
        """Lookups that found a record, since the cache was made (the worker reports them per batch)."""
        self.misses = 0
        """Lookups that found none."""

    def __len__(self) -> int:
        return len(self._records)

    def get(self, user_id: str) -> UserState | None:
        """The cached record of ``user_id``, now the most recently used, or None."""
        record = self._records.get(user_id)
        if record is None:
            self.misses += 1
        else:
            self.hits += 1
            self._records.move_to_end(user_id)
        return record

    def put(self, user_id: str, record: UserState) -> None:
        """Cache ``record`` as the user's current record, evicting the least recently used beyond capacity."""
        if self.capacity == 0:
            return
        self._records[user_id] = record
        self._records.move_to_end(user_id)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def discard(self, user_id: str) -> None:
        """Forget ``user_id`` (no error when it is not cached)."""
        self._records.pop(user_id, None)

    def clear(self) -> None:
        """Forget every user."""
        self._records.clear()
