"""The encoder's one-event step and profile head in numpy, for the stream's small units of work.

A live unit often folds one event per user for a handful of users. Through torch that costs about a millisecond
whatever the batch (some forty operators, each with torch's dispatch overhead), a quarter of a one-event unit's
work; the same arithmetic on numpy arrays costs a sixth of it, and stays cheaper at thousands of users
(docs/performance.md, "The one-event step on numpy"). `NumpyEncoder` reads the weights of a `ProfileEncoder`
in place (numpy views of its tensors: no second copy of a large item table) and repeats its `step` and
`profile` operation for operation, so the two agree to float32 rounding
(tests/models/test_numpy_step.py holds them within the serving-parity bound, 1e-5; they differ by about 1e-7).
Rows with more than `FOLD_STEP_LIMIT` new events (a window re-folded after an out-of-order event) still go
through the model's batched `run`, as in `ProfileEncoder.fold`.

numpy's BLAS may start threads of its own; the worker limits them with torch's (`models.threads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from models.encoder import FOLD_STEP_LIMIT, ProfileEncoder, fold_lengths, fold_steps
from models.errors import ModelError
from models.features import OOV_INDEX, EventFields, SequenceCodes

Array = np.ndarray[Any, np.dtype[Any]]

_READ_PARAMETERS = frozenset(
    {
        "item_embedding.weight",
        "output_item_embedding.weight",
        "category_embedding.weight",
        "query_embedding.weight",
        "type_embedding.weight",
        "gap_embedding.weight",
        "price_embedding.weight",
        "quantity_embedding.weight",
        "gru.weight_ih_l0",
        "gru.weight_hh_l0",
        "gru.bias_ih_l0",
        "gru.bias_hh_l0",
        "head.weight",
        "head.bias",
        "log_logit_scale",  # training only: scales scores, never a profile
        "recency_decay_logit",
        "recency_gate.weight",
        "recency_gate.bias",
    }
)
"""Every parameter a `ProfileEncoder` may have; a model with another one would be folded wrongly here."""

_KNOWN_CONFIG = frozenset(
    {
        "embedding_dim",
        "hidden_dim",
        "dropout",  # training only
        "tie_item_embeddings",
        "init_std",  # initialisation only
        "init_logit_scale",  # training only
        "recency_memory",
        "item_category_vectors",
    }
)
"""Every `EncoderConfig` field this step follows; a new one may change the arithmetic, so it is refused."""

_SOFTPLUS_THRESHOLD = 20.0  # torch's default: softplus(x) = x above it


def _view(tensor: torch.Tensor) -> Array:
    # The model's own storage, not a copy: an item table can be hundreds of megabytes, and a view can never
    # hold other weights than the model does.
    if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
        raise ModelError(f"the numpy step needs float32 weights on the CPU, got {tensor.dtype} on {tensor.device}")
    return tensor.detach().numpy()


def _sigmoid(x: Array) -> Array:
    # The tanh form never overflows (1 / (1 + exp(-x)) does in float32 for x below about -88).
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class NumpyEncoder:
    """A `ProfileEncoder`'s stream entry point (`fold`) on numpy arrays, reading the model's weights in place."""

    def __init__(self, model: ProfileEncoder) -> None:
        unknown = {name for name, _ in model.named_parameters()} - _READ_PARAMETERS
        if unknown:
            raise ModelError(f"the numpy step does not know the parameters {sorted(unknown)}")
        unknown = set(model.config.to_dict()) - _KNOWN_CONFIG
        if unknown:
            raise ModelError(f"the numpy step does not know the encoder settings {sorted(unknown)}")
        self.model = model  # for rows longer than FOLD_STEP_LIMIT
        self.features = model.features
        self.hidden_dim = model.hidden_dim  # S: H, or H + D with the recency memory
        self._gru_dim = model.config.hidden_dim  # H
        params = dict(model.named_parameters())
        self._input_items = _view(model.item_embedding.weight)  # [N, D]
        own = model.output_item_embedding if model.output_item_embedding is not None else model.item_embedding
        self._output_items = _view(own.weight)  # [N, D], the items' own part of their vectors
        self._categories = _view(model.category_embedding.weight)  # [C, D]
        self._query = _view(model.query_embedding.weight)  # [Q+1, D], row 0 zero (padding)
        self._types = _view(model.type_embedding.weight)
        self._gaps = _view(model.gap_embedding.weight)
        self._prices = _view(model.price_embedding.weight)
        self._quantities = _view(model.quantity_embedding.weight)
        # Transposed views, so each step is x @ W.T as torch computes it (BLAS reads the transpose in place).
        self._w_ih = _view(params["gru.weight_ih_l0"]).T  # [D, 3H], gates r, z, n
        self._w_hh = _view(params["gru.weight_hh_l0"]).T  # [H, 3H]
        self._b_ih = _view(params["gru.bias_ih_l0"])  # [3H]
        self._b_hh = _view(params["gru.bias_hh_l0"])
        self._head_w = _view(model.head.weight).T  # [H, D]
        self._head_b = _view(model.head.bias)
        self._recency = model.recency_decay_logit is not None and model.recency_gate is not None
        if model.recency_decay_logit is not None and model.recency_gate is not None:
            self._decay_logit = _view(model.recency_decay_logit)  # 0-d; lam = sigmoid of it, at each step
            self._gate_w = _view(model.recency_gate.weight).T  # [H, 1]
            self._gate_b = _view(model.recency_gate.bias)  # [1]
        self._item_category: Array | None = None
        self._item_category_mask: Array | None = None
        if model.item_category is not None and model.item_category_mask is not None:
            self._item_category = model.item_category.numpy()  # [N], a buffer derived from the features
            self._item_category_mask = _view(model.item_category_mask)  # [N, 1]

    def initial_hidden(self, batch: int) -> Array:
        """Hidden state of users without events: zeros [B, S]."""
        return np.zeros((batch, self.hidden_dim), dtype=np.float32)

    def embed(self, x: SequenceCodes) -> Array:
        """One event per user -> input vectors [B, D], as `ProfileEncoder.embed` (no dropout: inference)."""
        terms = self._query[x.query_terms]  # [B, T, D], padding rows are zero
        term_count = np.maximum((x.query_terms != 0).sum(-1, keepdims=True), 1).astype(np.float32)  # [B, 1]
        return (  # type: ignore[no-any-return]
            self._types[x.type_code]
            + self._input_items[x.item] * x.item_mask[:, None]
            + self._categories[x.category] * x.category_mask[:, None]
            + terms.sum(-2) / term_count
            + self._gaps[x.gap]
            + self._prices[x.price]
            + self._quantities[x.quantity]
        )

    def step(self, h: Array, x: SequenceCodes) -> Array:
        """Fold one new event per user: h [B, S] float32, x of length B -> [B, S] (torch's GRU cell equations)."""
        gru = self._gru_dim
        h_gru = h[:, :gru]  # [B, H]
        gates_x = self.embed(x) @ self._w_ih + self._b_ih  # [B, 3H]
        gates_h = h_gru @ self._w_hh + self._b_hh  # [B, 3H]
        reset = _sigmoid(gates_x[:, :gru] + gates_h[:, :gru])
        update = _sigmoid(gates_x[:, gru : 2 * gru] + gates_h[:, gru : 2 * gru])
        candidate = np.tanh(gates_x[:, 2 * gru :] + reset * gates_h[:, 2 * gru :])
        h_new = (1.0 - update) * candidate + update * h_gru  # [B, H]
        if not self._recency:
            return h_new  # type: ignore[no-any-return]
        lam = _sigmoid(self._decay_logit)
        known = x.item_mask * (x.item != OOV_INDEX).astype(np.float32)  # [B]
        keep = (1.0 - known * (1.0 - lam))[:, None]  # [B, 1]
        add = (known * (1.0 - lam))[:, None] * self._item_vectors_of(x.item)  # [B, D]
        memory = keep * h[:, gru:] + add  # [B, D]
        return np.concatenate([h_new, memory], axis=1)

    def profile(self, h: Array) -> Array:
        """States [B, S] -> L2-normalised profiles [B, D], as `ProfileEncoder.profile`."""
        gru = self._gru_dim
        h_gru = h[:, :gru]
        z = h_gru @ self._head_w + self._head_b  # [B, D]
        if self._recency:
            a = h_gru @ self._gate_w + self._gate_b  # [B, 1]
            gate = np.where(a > _SOFTPLUS_THRESHOLD, a, np.log1p(np.exp(np.minimum(a, _SOFTPLUS_THRESHOLD))))
            z = z + gate * h[:, gru:]
        norm = np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)  # F.normalize's eps
        return z / norm  # type: ignore[no-any-return]

    def _item_vectors_of(self, items: Array) -> Array:
        vectors = self._output_items[items]  # [B, D]
        if self._item_category is None or self._item_category_mask is None:
            return vectors
        return vectors + self._categories[self._item_category[items]] * self._item_category_mask[items]  # type: ignore[no-any-return]

    def fold(
        self, h0: Array, new_events: Sequence[Sequence[EventFields]], prev_ts_ms: Sequence[int | None]
    ) -> tuple[Array, Array]:
        """`ProfileEncoder.fold` on numpy: h0 [B, S] float32, each row's new events -> (h_new [B, S], profiles [B, D]).

        Users with at most `FOLD_STEP_LIMIT` new events go step by step here; longer rows go through the model's
        `fold` (torch's batched `run`).
        """
        lengths = fold_lengths(h0.shape, str(h0.dtype), self.hidden_dim, new_events, prev_ts_ms)
        h = h0.copy()
        long_rows = [b for b in range(len(lengths)) if lengths[b] > FOLD_STEP_LIMIT]
        if long_rows:
            h_long, _ = self.model.fold(
                torch.from_numpy(h[long_rows]),
                [new_events[b] for b in long_rows],
                [prev_ts_ms[b] for b in long_rows],
            )
            h[long_rows] = h_long.numpy()
        for users, events, previous in fold_steps(new_events, prev_ts_ms, lengths):
            h[users] = self.step(h[users], self.features.event_codes(events, previous))
        return h, self.profile(h)
