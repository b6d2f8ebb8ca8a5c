"""(b) The naive design, bench-only: re-encode each user's whole recent window for every event, one user at a time.

It is profilestream's own :class:`~streams.worker.processor.BatchProcessor` (decoding, folding, state access, profile
building and publishing are shared) with one difference: where the worker makes one batched call that runs a GRU
step per new event from the stored hidden vector, the naive design reads nothing of the hidden vector and runs the
GRU over the user's last ``StateSpec.recent_window`` events again for every new event, one user and one event per
call. Its profiles are those of the window alone; the benchmark compares cost, not quality.

The swap happens at the encoder: :class:`NaiveProcessor` hands its parent a :class:`WindowReencoder`, and before
the shared ``_encode_and_publish`` runs it tells the re-encoder each new event's window. Rows of the parent's
batched call that carry no new event (the base vector of the evicted events) are passed through without work.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from models.features import EventFields
from state.events import StateEvent, event_order_key
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.processor import BatchOutput, BatchProcessor, StateAccess, _UserWork


class WindowReencoder(EncoderRuntime):
    """An encoder runtime whose ``fold`` encodes, for each new event it was told about, that event's window."""

    def __init__(self, runtime: EncoderRuntime) -> None:
        super().__init__(runtime.model, runtime.model_version)
        self.windows: dict[EventFields, list[StateEvent]] = {}
        """The window (the user's recent events up to and including it) of each new event of the batch."""
        self.windows_encoded = 0
        self.events_encoded = 0

    def fold(
        self,
        hidden: Sequence[np.ndarray | None],
        sequences: Sequence[Sequence[EventFields]],
        prev_ts_ms: Sequence[int | None],
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Same contract as :meth:`EncoderRuntime.fold`, computed the naive way (see the module docstring)."""
        new_hidden: list[np.ndarray] = []
        profiles = np.zeros((len(sequences), self.embedding_dim), dtype=np.float32)  # [B, D]
        for row, events in enumerate(sequences):  # one user at a time
            start = hidden[row]
            h = np.zeros(self.hidden_dim, dtype=np.float32) if start is None else start  # [H]
            encoded = False
            for event in events:
                # Popped: a repaired row repeats the batch's events, but the naive design encodes each once.
                window = self.windows.pop(event, None)
                if window is None:
                    continue
                h_t, p_t = self.model.encode_batch_state([window])  # a batch of one: [1, H], [1, D]
                h, profiles[row] = h_t[0].numpy().copy(), p_t[0].numpy()
                encoded = True
                self.windows_encoded += 1
                self.events_encoded += len(window)
            if not encoded:
                with torch.inference_mode():
                    profiles[row] = self.model.profile(torch.from_numpy(h).unsqueeze(0))[0].numpy()
            new_hidden.append(h)
        return new_hidden, profiles


class NaiveProcessor(BatchProcessor):
    """The worker's processor with the naive encoding: a full window re-encode per event, user by user."""

    def __init__(self, encoder: EncoderRuntime, *args: Any, **kwargs: Any) -> None:
        # Everything but the encoder is BatchProcessor's own.
        self.reencoder = WindowReencoder(encoder)
        super().__init__(self.reencoder, *args, **kwargs)

    def _encode_and_publish(self, work: list[_UserWork], state: StateAccess, output: BatchOutput) -> None:
        self.reencoder.windows = event_windows(work, self.spec.recent_window)
        try:
            super()._encode_and_publish(work, state, output)
        finally:
            self.reencoder.windows = {}


def event_windows(work: Sequence[_UserWork], window: int) -> dict[EventFields, list[StateEvent]]:
    """For every new event of the batch: the user's last ``window`` recent events up to and including it (stored
    events, which the encoder reads as they are, as the worker's own rows)."""
    windows: dict[EventFields, list[StateEvent]] = {}
    for w in work:
        recent = w.record.recent  # ordered by event_order_key, this batch's events included
        keys = [event_order_key(e) for e in recent]
        for event in w.new_events:
            end = bisect_right(keys, event_order_key(event))
            windows[event] = recent[max(0, end - window) : end]
    return windows
