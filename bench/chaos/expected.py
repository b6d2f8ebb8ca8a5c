"""The fault-free result, computed offline from the event file: every user's final profile as the contract says
it must be (DESIGN.md, invariant 4), whatever happened on the way.

Per user: the number of distinct events, the newest event time, the aggregates of folding every event in event
order into a fresh record, and the offline ``encode`` of the user's whole history by the worker's own model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import torch

from models.features import EventInput
from state.aggregates import profile_aggregates
from state.fold import FoldOutcome, fold_event
from state.record import UserState
from streams.bridge import to_state_event
from streams.contract.events import Event
from streams.offline.histories import ReadReport, group_by_user
from streams.settings import Settings
from streams.worker.encoder_runtime import EncoderRuntime

ENCODE_BATCH = 64


@dataclass(frozen=True)
class ExpectedProfile:
    """What a user's final published profile must hold."""

    event_count: int
    last_event_ts_ms: int
    embedding: np.ndarray
    """float32 [D], before the 7-decimal rounding of publishing."""
    aggregates: dict[str, object]
    """As they read back from the profile's JSON."""


def expected_profiles(events: Sequence[Event], settings: Settings) -> dict[str, ExpectedProfile]:
    """Every user's expected final profile under ``settings`` (its state spec and model)."""
    report = ReadReport()
    histories = group_by_user(events, report)
    if report.duplicates:
        raise ValueError(f"the event file repeats {report.duplicates} event ids: the expectation would be ambiguous")
    spec = settings.state_spec()
    embeddings = _encode_all(histories.inputs, settings)
    out: dict[str, ExpectedProfile] = {}
    for user_id, history, embedding in zip(histories.user_ids, histories.events, embeddings, strict=True):
        record = UserState.new()
        for event in history:
            outcome = fold_event(record, to_state_event(event, spec.max_query_terms), spec)
            # In event order nothing is late and the ids are distinct: anything else is a broken file.
            if outcome is not FoldOutcome.ACCEPTED:
                raise ValueError(f"an event of the file was {outcome.value} when folded in event order")
        out[user_id] = ExpectedProfile(
            event_count=record.event_count,
            last_event_ts_ms=record.last_event_ms,
            embedding=embedding,
            # Through JSON, as the profile carries them (tuples become lists, keys stay in order).
            aggregates=orjson.loads(orjson.dumps(profile_aggregates(record, spec))),
        )
    return out


def _encode_all(inputs: Sequence[Sequence[EventInput]], settings: Settings) -> list[np.ndarray]:
    """The offline ``encode`` of every history, by the worker's model, in batches of similar lengths (ten times
    faster than one call per user; the same profiles to about 1e-7)."""
    model = EncoderRuntime.load(settings.model_dir, embedding_dim=settings.embedding_dim).model
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(inputs)
    with torch.inference_mode():
        for start in range(0, len(order), ENCODE_BATCH):
            rows = order[start : start + ENCODE_BATCH]
            profiles = model.encode_batch([inputs[i] for i in rows]).numpy()  # [B, D]
            for row, i in enumerate(rows):
                out[i] = profiles[row].astype(np.float32)
    return out
