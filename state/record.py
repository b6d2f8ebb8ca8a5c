"""The per-user state record: the encoder's hidden vector, event-time bookkeeping, aggregates, recent events."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from state.decay import DecayedWeights
from state.events import StateEvent
from state.windows import BucketSeries

AggregateState = BucketSeries | DecayedWeights
"""The state of one aggregator, keyed in `UserState.aggregates` by its `signature`."""


def empty_hidden() -> npt.NDArray[np.float32]:
    """The hidden vector of a user the encoder has not seen yet."""
    return np.zeros(0, dtype=np.float32)


@dataclass(eq=False)
class UserState:
    """Everything state keeps about one user.

    `fold_event` maintains the event-time fields, the recent window, the dedupe ids and the aggregates; the
    worker sets `hidden`, `model_version` and `version` after the encoder step.
    """

    hidden: npt.NDArray[np.float32] = field(default_factory=empty_hidden)
    """The encoder's hidden state, float32 [H]; empty before the first encoder step."""
    model_version: str = ""
    """Version of the model that produced `hidden`."""
    base_hidden: npt.NDArray[np.float32] = field(default_factory=empty_hidden)
    """The encoder's hidden state after every accepted event older than `recent` (empty: the initial state).
    Folding `recent` from here gives `hidden` again, so an event that arrives out of order can be put in its
    place exactly instead of being folded after newer ones."""
    base_known: bool = True
    """False when `base_hidden` is unknown (a record from format 2): the worker re-encodes from the window."""
    positions: list[int] = field(default_factory=lambda: [-1, -1, -1])
    """Per event type (browse, search, purchase): the highest source position (the offset in the input topic of
    that type) of this user's events already processed; -1 when none. A redelivered message (at or below it)
    is a duplicate however long ago it was folded: the event-id memory below is bounded, this is not."""
    base_prev_ts_ms: int = 0
    """Event time of the newest event folded into `base_hidden` (0: none), the previous-event time of the first
    event of `recent`."""
    version: int = 0
    """Profile version, strictly increasing per user; bumped by the worker on each publish."""
    first_event_ms: int = 0
    """Oldest accepted event time (0 while `event_count` is 0)."""
    last_event_ms: int = 0
    """Newest accepted event time: the user's event-time clock, the "as of" of every aggregate."""
    event_count: int = 0
    """Accepted events over the user's whole life (duplicates and too-late events are not counted)."""
    recent: list[StateEvent] = field(default_factory=list)
    """The newest `StateSpec.recent_window` accepted events, ordered by (ts_ms, event_id_hash)."""
    evicted_ids: list[tuple[int, int]] = field(default_factory=list)
    """(ts_ms, event_id_hash) of accepted events outside `recent` that are still within the allowed lateness,
    ordered ascending; with the ids in `recent` they are the ids checked for duplicates."""
    aggregates: dict[str, AggregateState] = field(default_factory=dict)
    """Aggregator states keyed by their signature (see `state.aggregates`)."""

    @classmethod
    def new(cls) -> UserState:
        """A record for a user without any accepted event."""
        return cls()

    def copy(self) -> UserState:
        """A deep copy that shares nothing mutable with this record."""
        return copy.deepcopy(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserState):
            return NotImplemented
        return (
            self.hidden.dtype == other.hidden.dtype
            and np.array_equal(self.hidden, other.hidden, equal_nan=True)
            and self.model_version == other.model_version
            and np.array_equal(self.base_hidden, other.base_hidden, equal_nan=True)
            and self.base_known == other.base_known
            and self.base_prev_ts_ms == other.base_prev_ts_ms
            and self.positions == other.positions
            and self.version == other.version
            and self.first_event_ms == other.first_event_ms
            and self.last_event_ms == other.last_event_ms
            and self.event_count == other.event_count
            and self.recent == other.recent
            and self.evicted_ids == other.evicted_ids
            and self.aggregates == other.aggregates
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, like any dataclass with eq
