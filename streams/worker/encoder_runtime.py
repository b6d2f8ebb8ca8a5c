"""The encoder as the worker runs it: loaded once at start, one batched fold call per micro-batch.

The fold runs on numpy (`models.numpy_step`): the stream's units are often a few events, where torch's
per-operator cost was a quarter of a unit's work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.checkpoint import load_checkpoint, model_version, untrained_model
from models.encoder import EncoderConfig, ProfileEncoder
from models.features import EventFields
from models.numpy_step import NumpyEncoder
from streams.contract.profile import EMBEDDING_DECIMALS

log = logging.getLogger(__name__)

UNTRAINED_SEED = 0


class EncoderRuntime:
    """A loaded encoder and its version; folds new events into many users' hidden vectors at once."""

    def __init__(self, model: ProfileEncoder, version: str) -> None:
        self.model = model.eval()
        self.model_version = version
        self.hidden_dim = model.hidden_dim  # what state stores per user
        self.embedding_dim = model.embedding_dim
        self._numpy = NumpyEncoder(self.model)

    @classmethod
    def load(cls, model_dir: Path | None, *, embedding_dim: int = 64) -> EncoderRuntime:
        """Load the checkpoint in ``model_dir``; without one, a deterministic untrained encoder.

        Raises :class:`models.errors.CheckpointError` with an operator-facing message when the checkpoint is
        missing or corrupt: a worker must not start on a model it cannot trust.
        """
        if model_dir is None:
            model = untrained_model(
                EncoderConfig(embedding_dim=embedding_dim, hidden_dim=embedding_dim), UNTRAINED_SEED
            )
            version = model_version(model)
            log.warning("no model configured: running the untrained encoder %s", version)
            return cls(model, version)
        model, metadata = load_checkpoint(model_dir)
        return cls(model, metadata.model_version)

    def fold(
        self,
        hidden: Sequence[np.ndarray | None],
        sequences: Sequence[Sequence[EventFields]],
        prev_ts_ms: Sequence[int | None],
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Fold each user's new events into their hidden vector (None = a new user).

        Returns the new hidden vectors (float32, one per user) and the profiles [B, D] (L2-normalised).
        """
        h0 = self._numpy.initial_hidden(len(sequences))  # [B, S]
        known = [i for i, h in enumerate(hidden) if h is not None]
        if known:
            # The known vectors go in with one stacked copy, not one row assignment each.
            h0[known] = np.stack([np.asarray(hidden[i], dtype=np.float32) for i in known])  # [K, S]
        h_new, profiles = self._numpy.fold(h0, sequences, prev_ts_ms)  # [B, S], [B, D]
        # Copies, not views: a view would keep its whole batch's array alive in the record cache.
        return [row.copy() for row in h_new], profiles


def embedding_rows(profiles: np.ndarray) -> list[list[float]]:
    """Profiles [B, D] as the lists of floats published, rounded to ``EMBEDDING_DECIMALS`` in one call."""
    return np.round(profiles.astype(np.float64), EMBEDDING_DECIMALS).tolist()  # type: ignore[no-any-return]
