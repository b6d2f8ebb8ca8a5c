"""Exponentially decayed weights on event time, for the top categories and top search terms.

The weight of a key as of time T is the sum, over the events that carried the key, of
``2 ** (-(T - ts_ms) / half_life_ms)``. Weights are stored as of `reference_ms` (the time of the user's newest
event that added to the table) and rescaled when a newer one adds to it, so a late event simply adds a smaller
contribution; reading (`top`) applies the decay from `reference_ms` to the time asked for. Stored weights are
rounded to float32 after every update, which keeps the codec lossless at 4 bytes a weight.
"""

from __future__ import annotations

import math
import struct
from array import array
from dataclasses import dataclass, field
from enum import IntEnum
from operator import itemgetter

_F32 = struct.Struct("<f")
_KEY = itemgetter(0)
_WEIGHT = itemgetter(1)


def decay_factor(elapsed_ms: int, half_life_ms: int) -> float:
    """How much a weight shrinks over `elapsed_ms` of event time."""
    return math.exp2(-elapsed_ms / half_life_ms)


def to_float32(value: float) -> float:
    """Round to the nearest float32, the precision the codec stores."""
    return float(_F32.unpack(_F32.pack(value))[0])


class TopKind(IntEnum):
    """Which hashes a weight table ranks; the code is stored in the record."""

    CATEGORIES = 1
    SEARCH_TERMS = 2


@dataclass
class DecayedWeights:
    """At most `capacity` keys with their decayed weights as of `reference_ms`."""

    kind: TopKind
    half_life_ms: int
    capacity: int
    reference_ms: int = 0
    weights: dict[int, float] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        """Identifies the parameters these weights were built under."""
        return f"{self.kind.name.lower()}/{self.half_life_ms}/{self.capacity}"

    def advance(self, newest_ms: int) -> None:
        """Rescale every weight to `newest_ms` (never backwards)."""
        if newest_ms <= self.reference_ms:
            return
        if not self.weights:
            # Nothing to rescale (a user without searches has an empty term table): only the reference moves.
            self.reference_ms = newest_ms
            return
        factor = decay_factor(newest_ms - self.reference_ms, self.half_life_ms)
        self.reference_ms = newest_ms
        # One float32 array rounds every rescaled weight at once (the same rounding as `to_float32`); a key
        # whose weight underflowed to zero carries no information any more and is dropped.
        scaled = array("f", [weight * factor for weight in self.weights.values()])
        self.weights = {key: weight for key, weight in zip(self.weights, scaled, strict=True) if weight > 0.0}

    def add(self, key: int, ts_ms: int) -> None:
        """Add one occurrence of `key` at `ts_ms` (at or before `reference_ms`).

        When the table is full, a new key replaces the lightest one (ties: lowest hash) only if its
        contribution is heavier; otherwise the occurrence is not counted.
        """
        contribution = decay_factor(self.reference_ms - ts_ms, self.half_life_ms)
        if key in self.weights:
            self.weights[key] = to_float32(self.weights[key] + contribution)
            return
        if len(self.weights) >= self.capacity:
            if self.capacity == 0:
                return
            victim = min(self.weights, key=lambda k: (self.weights[k], k))
            if self.weights[victim] >= contribution:
                return
            del self.weights[victim]
        stored = to_float32(contribution)
        if stored > 0.0:
            self.weights[key] = stored

    def top(self, n: int, as_of_ms: int) -> list[tuple[int, float]]:
        """The `n` heaviest keys as of `as_of_ms` (heaviest first, ties by hash), without changing the state."""
        factor = decay_factor(max(as_of_ms - self.reference_ms, 0), self.half_life_ms)
        # Heaviest first, ties by hash: sort by hash, then stably by weight descending (two sorts in C beat
        # one with a tuple key built per item; this runs for every profile published).
        ranked = sorted(sorted(self.weights.items(), key=_KEY), key=_WEIGHT, reverse=True)
        return [(key, weight * factor) for key, weight in ranked[:n]]
