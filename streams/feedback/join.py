"""The impression-click join: pure, in memory, bounded; it turns impressions and clicks into counted outcomes.

A click is a browse or purchase carrying the ``request_id`` of an impression of the same user, with an event
time at most the attribution window after the impression's. The join holds each impression for the window
(judged by the wall clock against the impression's ``ts``), at most ``max_per_user`` per user, and of each only
what the metrics need: its labels and a 64-bit hash of each of its top ``max(CTR_KS)`` item ids. A click read
before its impression (the topics are read independently, so the click's topic may run ahead) waits, up to the
window and ``max_pending`` clicks in all, for its impression.

Outcomes, one per countable fact:

- :class:`Shown` for every impression counted;
- :class:`Clicked` for every attributed click (``clicks per impression`` divides their count by the impressions);
- :class:`ClickedAt` once per impression and ``k`` when the impression gets its first click on an item among its
  top ``k`` (CTR@k divides their count by the impressions);
- :class:`Unattributed` for a click whose impression is not held: never seen within the window, another user's,
  too late, or no room to wait.
"""

from __future__ import annotations

import contextlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from streams.contract.events import BrowseEvent, PurchaseEvent
from streams.contract.feedback import Impression

CTR_KS: Final[tuple[int, ...]] = (1, 5, 10, 20)
"""The cut-offs of CTR@k; an impression's items beyond the largest are held only as a count."""
POPULAR_VERSION: Final = "none"
"""The model version label of a popularity-fallback impression (scored with no model)."""

UnattributedReason = Literal["no_impression", "other_user", "too_late", "pending_full"]
UNATTRIBUTED_REASONS: Final[tuple[UnattributedReason, ...]] = (
    "no_impression",
    "other_user",
    "too_late",
    "pending_full",
)


class Shown(NamedTuple):
    """An impression was counted."""

    model_version: str
    source: str


class Clicked(NamedTuple):
    """A click was attributed to an impression."""

    model_version: str
    source: str
    kind: str
    """``browse`` or ``purchase``."""


class ClickedAt(NamedTuple):
    """An impression got its first click among its top ``k`` items."""

    model_version: str
    source: str
    k: int


class Unattributed(NamedTuple):
    """A click carried a request id the join could not attribute."""

    reason: UnattributedReason


Outcome = Shown | Clicked | ClickedAt | Unattributed
Click = BrowseEvent | PurchaseEvent


@dataclass(slots=True)
class _Held:
    user_id: str
    ts_ms: int
    model_version: str
    source: str
    partition: int
    top: array[int]  # [min(len(items), max(CTR_KS))] int64 hashes of the item ids, rank order
    clicked_mask: int = 0
    """Bit i set once a click landed among the top CTR_KS[i] items."""


@dataclass(slots=True)
class _Pending:
    click: Click
    partition: int
    arrived_ms: int
    counted: bool


@dataclass
class FeedbackJoin:
    """Impressions held for the attribution window and clicks waiting for their impression."""

    window_ms: int = 30 * 60 * 1000
    max_per_user: int = 32
    max_pending: int = 100_000
    _held: OrderedDict[str, _Held] = field(default_factory=OrderedDict)
    _by_user: dict[str, list[str]] = field(default_factory=dict)
    """Each user's held request ids, oldest first (a list: a deque costs 600 bytes even when it holds one)."""
    _pending: OrderedDict[str, list[_Pending]] = field(default_factory=OrderedDict)
    _pending_count: int = 0

    @property
    def held(self) -> int:
        """Impressions held now."""
        return len(self._held)

    @property
    def pending(self) -> int:
        """Clicks waiting for their impression now."""
        return self._pending_count

    def impression(self, impression: Impression, *, partition: int, counted: bool, now_ms: int) -> list[Outcome]:
        """Hold one impression; ``counted=False`` for one read again after a restart (it was counted before, and is
        held only so its clicks can be attributed). Clicks that were waiting for it are attributed now."""
        if impression.request_id in self._held:
            return []  # read twice
        version = impression.model_version if impression.source == "profile" and impression.model_version else None
        if impression.ts_ms + self.window_ms < now_ms:
            # Too old to attract clicks (a consumer that fell behind by more than the window): counted, not held.
            return [Shown(version or POPULAR_VERSION, impression.source)] if counted else []
        held = _Held(
            impression.user_id,
            impression.ts_ms,
            version or POPULAR_VERSION,
            impression.source,
            partition,
            array("q", (hash(item) for item in impression.item_ids[: CTR_KS[-1]])),
        )
        self._held[impression.request_id] = held
        mine = self._by_user.setdefault(impression.user_id, [])
        mine.append(impression.request_id)
        if len(mine) > self.max_per_user:
            self._held.pop(mine.pop(0), None)
        outcomes: list[Outcome] = [Shown(held.model_version, held.source)] if counted else []
        for waiting in self._pending.pop(impression.request_id, []):
            self._pending_count -= 1
            attributed = self._attribute(waiting.click, held)
            outcomes.extend(attributed if waiting.counted else [])
        return outcomes

    def click(self, click: Click, *, partition: int, counted: bool = True, now_ms: int) -> list[Outcome]:
        """Attribute one click (an event with a ``request_id``) or keep it waiting for its impression.
        ``counted=False`` for one read again after a restart: it marks its impression as clicked, and counts
        nothing (it was counted before)."""
        if click.request_id is None:
            return []
        held = self._held.get(click.request_id)
        if held is not None:
            attributed = self._attribute(click, held)
            return attributed if counted else []
        if self._pending_count >= self.max_pending:
            return [Unattributed("pending_full")] if counted else []
        self._pending.setdefault(click.request_id, []).append(_Pending(click, partition, now_ms, counted))
        self._pending_count += 1
        return []

    def _attribute(self, click: Click, held: _Held) -> list[Outcome]:
        if click.user_id != held.user_id:
            return [Unattributed("other_user")]
        if click.ts_ms > held.ts_ms + self.window_ms:
            return [Unattributed("too_late")]
        outcomes: list[Outcome] = [Clicked(held.model_version, held.source, click.type)]
        item = hash(click.item_id)
        try:
            rank = held.top.index(item) + 1
        except ValueError:
            return outcomes  # an item beyond the tracked ranks, or one the impression did not show
        for bit, k in enumerate(CTR_KS):
            if rank <= k and not held.clicked_mask & (1 << bit):
                held.clicked_mask |= 1 << bit
                outcomes.append(ClickedAt(held.model_version, held.source, k))
        return outcomes

    def expire(self, now_ms: int) -> list[Outcome]:
        """Drop impressions older than the window, and clicks that waited the window in vain (counted)."""
        while self._held:
            request_id, held = next(iter(self._held.items()))
            if held.ts_ms + self.window_ms >= now_ms:
                break  # held in arrival order, which is close to ts order; a late straggler waits a little longer
            self._drop(request_id)
        outcomes: list[Outcome] = []
        while self._pending:
            request_id, waiting = next(iter(self._pending.items()))
            if waiting[0].arrived_ms + self.window_ms >= now_ms:
                break
            del self._pending[request_id]
            self._pending_count -= len(waiting)
            outcomes.extend(Unattributed("no_impression") for w in waiting if w.counted)
        return outcomes

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop what came from partitions this consumer no longer owns (another consumer reads them now)."""
        for request_id in [r for r, h in self._held.items() if h.partition in partitions]:
            self._drop(request_id)
        for request_id in list(self._pending):
            kept = [w for w in self._pending[request_id] if w.partition not in partitions]
            self._pending_count -= len(self._pending[request_id]) - len(kept)
            if kept:
                self._pending[request_id] = kept
            else:
                del self._pending[request_id]

    def _drop(self, request_id: str) -> None:
        held = self._held.pop(request_id)
        mine = self._by_user.get(held.user_id)
        if mine is not None:
            with contextlib.suppress(ValueError):  # already evicted by the per-user cap
                mine.remove(request_id)
            if not mine:
                del self._by_user[held.user_id]
