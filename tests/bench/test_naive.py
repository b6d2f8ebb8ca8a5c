"""The naive variant: which window each new event re-encodes, and that each is encoded once, one user at a time."""

from __future__ import annotations

import numpy as np

from bench.naive import WindowReencoder, event_windows
from state.events import StateEvent
from state.record import UserState
from streams.bridge import to_model_input
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.processor import InboundMessage, _UserWork

T = 1_767_225_600_000


def _event(i: int) -> StateEvent:
    return StateEvent(event_id_hash=1000 + i, type_code=0, ts_ms=T + 1000 * i, item_hash=50 + i)


def _work(recent: list[StateEvent], new: list[StateEvent]) -> _UserWork:
    record = UserState.new()
    record.recent = recent
    message = InboundMessage("t", 0, 0, b"u", b"{}", "browse")
    return _UserWork(user_id="u", record=record, last_message=message, messages=[], new_events=new)


def test_each_new_event_gets_the_window_that_ends_with_it() -> None:
    events = [_event(i) for i in range(8)]
    windows = event_windows([_work(events, events[5:])], window=3)
    assert windows[events[5]] == events[3:6]
    assert windows[events[7]] == events[5:8]
    assert len(windows) == 3


def test_a_short_history_gives_a_short_window() -> None:
    events = [_event(i) for i in range(2)]
    windows = event_windows([_work(events, events)], window=50)
    assert windows[events[0]] == [events[0]]
    assert len(windows[events[1]]) == 2


def test_the_reencoder_encodes_each_window_once_and_matches_a_full_encode() -> None:
    runtime = EncoderRuntime.load(None, embedding_dim=8)
    reencoder = WindowReencoder(runtime)
    events = [_event(i) for i in range(6)]
    inputs = [to_model_input(e) for e in events]
    reencoder.windows = event_windows([_work(events, events[4:])], window=4)
    # The worker's rows (its stored events, as it passes them): the user's new events from its stored vector,
    # then (repair) the whole window again. The full encode below reads the same events as model inputs.
    stored = np.ones(runtime.hidden_dim, dtype=np.float32)
    hidden, profiles = reencoder.fold([stored, None], [events[4:], events], [None, None])
    assert reencoder.windows_encoded == 2
    assert reencoder.events_encoded == 4 + 4
    h_full, p_full = runtime.model.encode_batch_state([inputs[2:6]])
    np.testing.assert_allclose(hidden[0], h_full[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(profiles[0], p_full[0].numpy(), rtol=1e-5, atol=1e-6)
    # Nothing new left for the second row: its vector passes through untouched.
    np.testing.assert_array_equal(hidden[1], np.zeros(runtime.hidden_dim, dtype=np.float32))
