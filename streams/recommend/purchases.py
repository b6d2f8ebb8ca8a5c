"""What each user bought, read from the purchase topic: the exclusion rule and the popularity signal.

The profile's aggregates count purchases but do not name the items, so the recommender reads
``events.purchase`` itself (from the start of its retention) and never recommends an item a user bought within
that retention. The sets are personal data: they live only in memory, and a user's purchases made before the
user's profile tombstone (expiry or erasure) are dropped with it; purchases after it (the user came back) stay,
whichever order a restart reads the two topics in. With the input topics' retention known (``input_retention_ms``),
`expire` drops purchases older than it, so memory holds no purchase longer than the topic does.
"""

from __future__ import annotations

from collections import Counter

from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import PurchaseEvent


class PurchaseLog:
    """Per-user purchased item ids and per-item purchase counts."""

    def __init__(self) -> None:
        self._bought: dict[str, dict[str, int]] = {}
        """Per user: each item bought and the event time of its newest purchase."""
        self.counts: Counter[str] = Counter()
        self.skipped = 0
        self.generation = 0
        """Bumped by every counted purchase, so a cached popularity ranking knows it is stale."""

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record of the purchase topic; anything the worker would reject is skipped and counted."""
        if value is None:
            self.skipped += 1
            return
        # now_ms=None: an old purchase still counts; only the contract's shape is checked here.
        decoded = decode_event(value, key, topic_type="purchase", now_ms=None)
        if isinstance(decoded, Rejection) or not isinstance(decoded, PurchaseEvent):
            self.skipped += 1
            return
        bought = self._bought.setdefault(decoded.user_id, {})
        bought[decoded.item_id] = max(decoded.ts_ms, bought.get(decoded.item_id, decoded.ts_ms))
        # Purchases, not units: one order of a million units must not put its item first in every fallback.
        self.counts[decoded.item_id] += 1
        self.generation += 1

    def bought(self, user_id: str) -> frozenset[str]:
        """The items ``user_id`` bought (empty for a user without purchases)."""
        return frozenset(self._bought.get(user_id, ()))

    def forget(self, user_id: str, before_ms: int | None = None) -> None:
        """Drop a user's purchases (their profile was deleted at ``before_ms``; None: all of them); the item
        counts stay, they name nobody.

        A restart reads every purchase before the profile topic, so a tombstone compaction has not removed yet
        comes after purchases the user made once they came back: those are kept (an item bought then must not
        be recommended)."""
        bought = self._bought.get(user_id)
        if bought is None:
            return
        bought = {} if before_ms is None else {item: ts_ms for item, ts_ms in bought.items() if ts_ms > before_ms}
        if bought:
            self._bought[user_id] = bought
        else:
            del self._bought[user_id]

    def expire(self, before_ms: int) -> int:
        """Drop every purchase whose event time is before ``before_ms`` (the topic's retention has passed it);
        returns how many (user, item) pairs went. The item counts stay, they name nobody.

        Event time is never later than the broker's append time, which retention counts from, so a purchase
        leaves memory no later than it leaves the topic."""
        dropped = 0
        for user_id in list(self._bought):
            bought = self._bought[user_id]
            kept = {item: ts_ms for item, ts_ms in bought.items() if ts_ms >= before_ms}
            dropped += len(bought) - len(kept)
            if not kept:
                del self._bought[user_id]
            elif len(kept) < len(bought):
                self._bought[user_id] = kept
        return dropped

    @property
    def users(self) -> int:
        """Users with at least one purchase held."""
        return len(self._bought)
