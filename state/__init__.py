"""Per-user state: the record, its versioned codec, event-time windows and aggregates, expiry, RocksDB options
and an offline reader. Imports numpy and rocksdict only; `streams/` hands it to a Faust table."""

from state.aggregates import aggregate_keys, profile_aggregates
from state.codec import FORMAT_VERSION, decode_state, encode_state
from state.errors import StateDecodeError, StateError
from state.events import StateEvent
from state.expiry import is_expired
from state.fold import FoldOutcome, fold_event
from state.record import UserState
from state.spec import StateSpec, WindowSpec

__all__ = [
    "FORMAT_VERSION",
    "FoldOutcome",
    "StateDecodeError",
    "StateError",
    "StateEvent",
    "StateSpec",
    "UserState",
    "WindowSpec",
    "aggregate_keys",
    "decode_state",
    "encode_state",
    "fold_event",
    "is_expired",
    "profile_aggregates",
]
