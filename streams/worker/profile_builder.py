"""From a stored record to a profile: one function for the batch path and the HTTP lookup.

A record carries the hidden vector of the model that made it (``UserState.model_version``). Only that model's
head may turn it into an embedding: projecting it through another model's head gives a vector of the wrong
space (or fails outright when the hidden sizes differ). A record of another model version is therefore
re-encoded from its stored window with the loaded model, exactly as the worker's REBUILD fold does, before any
profile is built from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from state.aggregates import profile_aggregates
from state.codec import decode_state
from state.record import UserState, empty_hidden
from state.spec import StateSpec
from streams.contract.profile import ProfileUpdated
from streams.worker.encoder_runtime import EncoderRuntime, embedding_rows


def build_profile(
    user_id: str, record: UserState, embedding: list[float], spec: StateSpec, now_ms: int
) -> ProfileUpdated:
    """The profile-updated event of ``record``, whose ``model_version`` made ``embedding``."""
    return ProfileUpdated(
        user_id=user_id,
        version=record.version,
        model_version=record.model_version,
        embedding=embedding,
        updated_at_ms=now_ms,
        last_event_ts_ms=record.last_event_ms,
        event_count=record.event_count,
        aggregates=profile_aggregates(record, spec),
    )


def is_current(record: UserState, encoder: EncoderRuntime) -> bool:
    """Whether ``record``'s hidden vector was made by the loaded model (its head may project it)."""
    return record.model_version == encoder.model_version and record.hidden.size == encoder.hidden_dim


def current_records(records: Sequence[UserState], encoder: EncoderRuntime) -> list[tuple[UserState, list[float]]]:
    """Each record as the loaded model sees it, with its embedding, in one batched encoder call at most.

    A record of the loaded model is projected through its head. Any other record (another model version, or
    another hidden size) is copied and re-encoded from its stored window, as the worker's rebuild does; the copy
    carries the loaded model's version. The stored records are not changed.
    """
    out: list[tuple[UserState, list[float]] | None] = [None] * len(records)
    current = [is_current(r, encoder) for r in records]
    project = [i for i, ok in enumerate(current) if ok]
    rebuild = [i for i, ok in enumerate(current) if not ok and records[i].recent]
    blank = [i for i, ok in enumerate(current) if not ok and not records[i].recent]
    with torch.inference_mode():
        if project:
            hidden = torch.from_numpy(np.stack([np.asarray(records[i].hidden, dtype=np.float32) for i in project]))
            rows = embedding_rows(encoder.model.profile(hidden).numpy())  # [P, D]
            for i, row in zip(project, rows, strict=True):
                out[i] = (records[i], row)
    if rebuild:
        sequences = [records[i].recent for i in rebuild]
        new_hidden, profiles = encoder.fold([None] * len(rebuild), sequences, [None] * len(rebuild))
        for i, h, row in zip(rebuild, new_hidden, embedding_rows(profiles), strict=True):
            out[i] = (_as_current(records[i], h, encoder), row)
    if blank:
        # A record without events (never stored by the worker, but possible on disk): the initial profile.
        with torch.inference_mode():
            initial = encoder.model.initial_hidden(1)  # [1, S]
            row = embedding_rows(encoder.model.profile(initial).numpy())[0]
        for i in blank:
            out[i] = (_as_current(records[i], initial[0].numpy().copy(), encoder), row)
    return [pair for pair in out if pair is not None]


def _as_current(record: UserState, hidden: np.ndarray, encoder: EncoderRuntime) -> UserState:
    # As the worker's REBUILD fold leaves a record: the window is the new model's whole history.
    rebuilt = record.copy()
    rebuilt.hidden = np.asarray(hidden, dtype=np.float32)
    rebuilt.model_version = encoder.model_version
    rebuilt.base_hidden, rebuilt.base_prev_ts_ms, rebuilt.base_known = empty_hidden(), 0, True
    return rebuilt


def current_profile(raw: bytes, user_id: str, encoder: EncoderRuntime, spec: StateSpec, now_ms: int) -> ProfileUpdated:
    """The profile of a stored value under the loaded model (the HTTP lookup's answer).

    Raises :class:`state.errors.StateDecodeError` for an unreadable value.
    """
    [(record, embedding)] = current_records([decode_state(raw, spec)], encoder)
    return build_profile(user_id, record, embedding, spec, now_ms)
