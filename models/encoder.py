"""The profile encoder: embed an event -> GRU step -> profile head, with the hidden state passed in and out.

Two entry points share every weight and every operation, so they agree to float rounding:

* `step(h, x)` / `fold(h0, new_events, prev_ts_ms)`: one new event per user, batched across users (the stream);
* `encode(sequence)` / `encode_batch(sequences)`: whole histories at once (training, evaluation, backfill).

The profile is `normalize(head(h))`, an L2-normalised vector of dimension `embedding_dim` that lives in the
space of the item vectors (`item_vectors()`): a recommender scores items by the dot product. The input item
embedding is, by default, the same table as the output item vectors ("tied" embeddings, as GRU4Rec's constrained
embeddings): it halves the parameters and lets the rare items that appear as inputs share what targets teach.

**Recency memory** (`EncoderConfig.recency_memory`, off for checkpoints that predate it): next to the GRU state
the model carries `r`, a decayed sum of the vectors of the items the user touched,
`r <- lam * r + (1 - lam) * v(item)` at each browse/purchase of a known item (searches and unknown items leave it
as it is; `lam` is learned). The profile becomes `normalize(head(h) + gate(h) * r)` with a learned, non-negative
gate read from the GRU state. It gives the model, in the item space and therefore in the dot product a
recommender computes, the cheap "the user goes back to what they just looked at" signal that a GRU only learns
approximately. The per-user state is then `[h ; r]`, `hidden_dim + embedding_dim` floats, and `step` and `run`
update `r` with the same arithmetic, so stream and offline profiles still agree.

**Category part of item vectors** (`EncoderConfig.item_category_vectors`, off for checkpoints that predate it):
an item's vector is its own embedding plus the embedding of its category (the one it was most often seen with
in the training data, `FeatureSpace.item_category_hashes`; items without one get nothing added). A rarely seen
item then starts from what its category's items taught, and a profile that points at a category (a city, a
shelf) ranks that category's items together, where an item-only table would have a vector learned from one or
two events. Everything that reads item vectors (training scores, the recency memory, `item_vectors()` and so
the exported vectors a recommender serves) sees the same composed vectors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor, nn

from models.errors import ModelError
from models.features import EVENT_TYPES, OOV_INDEX, EventFields, EventTensors, FeatureSpace

_SOFTPLUS_INVERSE_OF_ONE = math.log(math.e - 1.0)
FOLD_STEP_LIMIT = 4
"""`ProfileEncoder.fold` steps rows of at most this many events; longer rows run as whole sequences."""


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of the encoder (saved as `hparams.json` in a checkpoint)."""

    embedding_dim: int = 64  # D: profile, item-vector and input-embedding dimension
    hidden_dim: int = 64  # H: GRU hidden state; state/ stores H floats per user (H + D with recency_memory)
    dropout: float = 0.3  # on the summed input embedding, training only (docs/evaluation.md: 0.1 until 2026-12-01)
    tie_item_embeddings: bool = True  # input item embedding == output item vectors
    init_std: float = 0.05  # normal init of every embedding table
    init_logit_scale: float = 10.0  # training-only temperature; scales scores, so never changes a ranking
    recency_memory: bool = False  # carry a decayed memory of recent item vectors (module docstring)
    item_category_vectors: bool = False  # item vector = item embedding + its category's (module docstring)

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.hidden_dim < 1:
            raise ModelError("embedding_dim and hidden_dim must be positive")
        if not self.init_logit_scale > 0.0:
            raise ModelError(f"init_logit_scale must be positive, got {self.init_logit_scale}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Inverse of `to_dict`; unknown keys are an error (they would mean another code version)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ModelError(f"unknown encoder hyper-parameters {sorted(unknown)}")
        return cls(**data)


class ProfileEncoder(nn.Module):
    """GRU profile encoder over event sequences (`EventInput`s, or any `EventFields`); float32 tensors on CPU."""

    def __init__(self, config: EncoderConfig, features: FeatureSpace) -> None:
        super().__init__()
        self.config = config
        self.features = features
        self.trained = False  # set by training / checkpoint loading; an untrained model's version says so
        d, h = config.embedding_dim, config.hidden_dim
        self.item_embedding = nn.Embedding(features.num_items, d)  # [N, D]
        self.output_item_embedding = None if config.tie_item_embeddings else nn.Embedding(features.num_items, d)
        self.category_embedding = nn.Embedding(features.num_categories, d)  # [C, D]
        self.query_embedding = nn.Embedding(features.num_query_buckets + 1, d, padding_idx=0)  # [Q+1, D]
        self.type_embedding = nn.Embedding(len(EVENT_TYPES), d)  # [3, D]
        self.gap_embedding = nn.Embedding(features.num_gap_buckets, d)
        self.price_embedding = nn.Embedding(features.num_price_buckets, d)
        self.quantity_embedding = nn.Embedding(features.num_quantity_buckets, d)
        self.gru = nn.GRU(d, h, batch_first=True)
        self.head = nn.Linear(h, d)
        # Learned temperature of the training softmax: profiles are unit vectors, so without it the item vectors
        # (tied to the input embedding) would have to grow large for confident predictions.
        self.log_logit_scale = nn.Parameter(torch.zeros(()))
        # Recency memory: decay lam = sigmoid(logit), gate = softplus(Linear(h)). Absent when switched off, so
        # the state_dict of a model without it is unchanged.
        self.recency_decay_logit = nn.Parameter(torch.zeros(())) if config.recency_memory else None
        self.recency_gate = nn.Linear(h, 1) if config.recency_memory else None
        # Category-table row of each item and whether it has one; derived from `features`, so not in state_dict.
        rows = torch.from_numpy(features.item_category_indices()) if config.item_category_vectors else None  # [N]
        self.item_category: Tensor | None
        self.item_category_mask: Tensor | None
        self.register_buffer("item_category", rows, persistent=False)
        mask = (rows != 0).to(torch.float32).unsqueeze(-1) if rows is not None else None  # [N, 1]
        self.register_buffer("item_category_mask", mask, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small normal embeddings (they are summed, so unit-variance tables would swamp the GRU)."""
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=self.config.init_std)
                if module.padding_idx is not None:
                    with torch.no_grad():
                        module.weight[module.padding_idx].zero_()
        self.gru.reset_parameters()
        self.head.reset_parameters()
        with torch.no_grad():
            self.log_logit_scale.fill_(math.log(self.config.init_logit_scale))
            if self.recency_decay_logit is not None and self.recency_gate is not None:
                self.recency_decay_logit.zero_()  # lam = 0.5
                self.recency_gate.weight.zero_()
                self.recency_gate.bias.fill_(_SOFTPLUS_INVERSE_OF_ONE)  # gate starts at 1

    @property
    def embedding_dim(self) -> int:
        """D, the profile dimension."""
        return self.config.embedding_dim

    @property
    def hidden_dim(self) -> int:
        """The per-user state dimension: H, or H + D with the recency memory ([h ; r])."""
        extra = self.config.embedding_dim if self.config.recency_memory else 0
        return self.config.hidden_dim + extra

    def _recency_terms(self, x: EventTensors) -> tuple[Tensor, Tensor]:
        """Coefficients of `r <- keep * r + add` for events of leading shape `*`: keep [*, 1], add [*, D]."""
        assert self.recency_decay_logit is not None  # only called with the memory on
        lam = torch.sigmoid(self.recency_decay_logit)
        known = x.item_mask * (x.item != OOV_INDEX).to(x.item_mask.dtype)  # [*], 1 for a known item's event
        vectors = self._item_vectors_of(x.item)  # [*, D]
        keep = 1.0 - known * (1.0 - lam)  # [*]: lam after a known item, 1 otherwise
        add = (known * (1.0 - lam)).unsqueeze(-1) * vectors  # [*, D]
        return keep.unsqueeze(-1), add

    # -- building blocks ---------------------------------------------------------------------------------------
    def embed(self, x: EventTensors, *, dropout: bool = False) -> Tensor:
        """Event tensors of leading shape `*` -> input vectors [*, D] (sum of the feature embeddings)."""
        item = self.item_embedding(x.item) * x.item_mask.unsqueeze(-1)  # [*, D]
        category = self.category_embedding(x.category) * x.category_mask.unsqueeze(-1)  # [*, D]
        terms = self.query_embedding(x.query_terms)  # [*, T, D], padding rows are zero
        term_count = (x.query_terms != 0).sum(-1, keepdim=True).clamp(min=1).to(terms.dtype)  # [*, 1]
        query = terms.sum(-2) / term_count  # [*, D], mean over present terms
        out: Tensor = (
            self.type_embedding(x.type_code)
            + item
            + category
            + query
            + self.gap_embedding(x.gap)
            + self.price_embedding(x.price)
            + self.quantity_embedding(x.quantity)
        )  # [*, D]
        if dropout and self.config.dropout > 0.0:
            out = F.dropout(out, p=self.config.dropout, training=True)
        return out

    def initial_hidden(self, batch: int) -> Tensor:
        """Hidden state of users without events: zeros [B, S], S = hidden_dim."""
        return torch.zeros(batch, self.hidden_dim, dtype=torch.float32)

    def step(self, h: Tensor, x: EventTensors) -> Tensor:
        """Fold one new event per user into the state: h [B, S], x leading shape [B] -> [B, S] (S = hidden_dim)."""
        gru_h = h[:, : self.config.hidden_dim]  # [B, H]
        e = self.embed(x).unsqueeze(1)  # [B, 1, D]
        h_n: Tensor
        _, h_n = self.gru(e, gru_h.unsqueeze(0).contiguous())  # h_n [1, B, H]
        if self.recency_decay_logit is None:
            return h_n.squeeze(0)  # [B, H]
        keep, add = self._recency_terms(x)  # [B, 1], [B, D]
        r = keep * h[:, self.config.hidden_dim :] + add  # [B, D]
        return torch.cat([h_n.squeeze(0), r], dim=-1)  # [B, H + D]

    def run(self, x: EventTensors, h0: Tensor | None = None, *, dropout: bool = False) -> Tensor:
        """Whole sequences: x leading shape [B, L] -> states [B, L, S] (the state after each event).

        Outputs at padded positions are meaningless but never leak into earlier positions (both are causal).
        """
        e = self.embed(x, dropout=dropout)  # [B, L, D]
        hidden = self.config.hidden_dim
        out: Tensor
        if h0 is None:
            out, _ = self.gru(e)  # [B, L, H]
        else:
            out, _ = self.gru(e, h0[:, :hidden].unsqueeze(0).contiguous())
        if self.recency_decay_logit is None:
            return out
        keep, add = self._recency_terms(x)  # [B, L, 1], [B, L, D]
        r = h0[:, hidden:] if h0 is not None else out.new_zeros(out.shape[0], self.embedding_dim)  # [B, D]
        memory = []
        for t in range(out.shape[1]):  # the same update as `step`, one position at a time
            r = keep[:, t] * r + add[:, t]
            memory.append(r)
        return torch.cat([out, torch.stack(memory, dim=1)], dim=-1)  # [B, L, H + D]

    def profile(self, h: Tensor) -> Tensor:
        """States [..., S] -> L2-normalised profiles [..., D]."""
        if self.recency_gate is None:
            return F.normalize(self.head(h), p=2.0, dim=-1)
        gru_h, r = h[..., : self.config.hidden_dim], h[..., self.config.hidden_dim :]
        z = self.head(gru_h) + F.softplus(self.recency_gate(gru_h)) * r  # [..., D]
        return F.normalize(z, p=2.0, dim=-1)

    def _own_item_table(self) -> Tensor:
        """The items' own vectors [N, D]: the output table, which is the input one when they are tied."""
        table = self.output_item_embedding if self.output_item_embedding is not None else self.item_embedding
        return table.weight

    def output_item_weight(self) -> Tensor:
        """The item-vector table [N, D], with gradient (training uses it for scoring)."""
        if self.item_category is None or self.item_category_mask is None:
            return self._own_item_table()
        return self._own_item_table() + self.category_embedding.weight[self.item_category] * self.item_category_mask

    def _item_vectors_of(self, items: Tensor) -> Tensor:
        """Rows `items` (any shape `*`) of `output_item_weight()` -> [*, D], without building the whole table."""
        vectors = F.embedding(items, self._own_item_table())
        if self.item_category is None or self.item_category_mask is None:
            return vectors
        category = F.embedding(self.item_category[items], self.category_embedding.weight)
        return vectors + category * self.item_category_mask[items]

    def item_vectors(self) -> Tensor:
        """Item vectors [num_items, D] (row 0 = unknown item, row i = `features.item_hashes[i-1]`); a copy."""
        return self.output_item_weight().detach().clone()

    # -- inference entry points --------------------------------------------------------------------------------
    def encode(self, sequence: Sequence[EventFields]) -> Tensor:
        """A user's whole time-ordered history -> profile [D]. An empty history gives the initial profile."""
        return self.encode_batch([sequence])[0]

    def encode_batch(self, sequences: Sequence[Sequence[EventFields]]) -> Tensor:
        """B histories of any lengths -> profiles [B, D]."""
        return self.encode_batch_state(sequences)[1]

    def encode_batch_state(
        self,
        sequences: Sequence[Sequence[EventFields]],
        prev_ts_ms: Sequence[int | None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """B histories -> (hidden state [B, S], profile [B, D]), e.g. to rebuild state from a stored window.

        `prev_ts_ms[b]` is the time of the event before `sequences[b]` when the window does not start at the
        user's first event (None or omitted: the window is the whole history).
        """
        with torch.inference_mode():
            batch = len(sequences)
            h_last = self.initial_hidden(batch)  # [B, S]
            if batch and max(len(s) for s in sequences) > 0:
                x, lengths = self.features.tensorize_sequences(sequences, prev_ts_ms)  # [B, L], [B]
                out = self.run(x)  # [B, L, S]
                nonempty = torch.nonzero(lengths > 0).squeeze(1)  # [B']
                last = out[nonempty, lengths[nonempty] - 1]  # [B', S]
                h_last = h_last.index_copy(0, nonempty, last)
            return h_last, self.profile(h_last)

    def encode_steps(self, sequences: Sequence[Sequence[EventFields]]) -> tuple[Tensor, Tensor]:
        """B histories -> (profile after each event [B, L, D], lengths [B]); rows past a length are padding.

        The profile used to rank a user's event j is row j-1 (or the initial profile for j = 0).
        """
        with torch.inference_mode():
            x, lengths = self.features.tensorize_sequences(sequences)  # [B, L], [B]
            return self.profile(self.run(x)), lengths  # [B, L, D], [B]

    def initial_profile(self) -> Tensor:
        """Profile of a user without events [D]."""
        with torch.inference_mode():
            return self.profile(self.initial_hidden(1))[0]

    def fold(
        self,
        h0: Tensor,
        new_events: Sequence[Sequence[EventFields]],
        prev_ts_ms: Sequence[int | None],
    ) -> tuple[Tensor, Tensor]:
        """The stream entry point: fold each user's new events, in order, into their hidden state.

        h0 [B, S] float32 (rows of new users are `initial_hidden`); `new_events[b]` holds >= 1 time-ordered
        events of user b; `prev_ts_ms[b]` is the time of user b's last already-folded event, or None.
        Returns (h_new [B, S], profile [B, D]) as inference tensors. Users with at most `FOLD_STEP_LIMIT` new
        events go step by step (step k is one batched `step` over the users that have a k-th event); longer rows
        (a window re-folded after an out-of-order event) go through `run` in padded batches of similar lengths,
        so a long row costs a share of one GRU call instead of one Python step per event.
        """
        lengths = fold_lengths(tuple(h0.shape), str(h0.dtype), self.hidden_dim, new_events, prev_ts_ms)
        long_rows = [b for b in range(len(lengths)) if lengths[b] > FOLD_STEP_LIMIT]
        with torch.inference_mode():
            h = h0.clone()  # [B, S]
            # Rows of similar length run together (lengths within a factor of two), so padding stays small.
            groups: dict[int, list[int]] = {}
            for b in long_rows:
                groups.setdefault((lengths[b] - 1).bit_length(), []).append(b)
            for rows in groups.values():
                index = torch.tensor(rows, dtype=torch.int64)  # [B_g]
                x, padded_lengths = self.features.tensorize_sequences(
                    [new_events[b] for b in rows], [prev_ts_ms[b] for b in rows]
                )  # [B_g, L]
                out = self.run(x, h.index_select(0, index))  # [B_g, L, S]
                last = out[torch.arange(len(rows)), padded_lengths - 1]  # [B_g, S]
                h = h.index_copy(0, index, last)
            for users, events, previous in fold_steps(new_events, prev_ts_ms, lengths):
                index = torch.tensor(users, dtype=torch.int64)  # [B_k]
                x_k = self.features.tensorize(events, previous)  # leading shape [B_k]
                h_k = self.step(h.index_select(0, index), x_k)  # [B_k, S]
                h = h.index_copy(0, index, h_k)  # [B, S]
            return h, self.profile(h)  # [B, S], [B, D]


def fold_lengths(
    h0_shape: tuple[int, ...],
    h0_dtype: str,
    hidden_dim: int,
    new_events: Sequence[Sequence[EventFields]],
    prev_ts_ms: Sequence[int | None],
) -> list[int]:
    """Check the arguments of a fold (torch's or numpy's, `models.numpy_step`) -> each user's count of new events.

    `h0_dtype` is the state's dtype as `str` gives it ("torch.float32" or "float32").
    """
    batch = len(new_events)
    if h0_shape != (batch, hidden_dim):
        raise ValueError(f"h0 must be [{batch}, {hidden_dim}], got {list(h0_shape)}")
    if h0_dtype.removeprefix("torch.") != "float32":
        raise ValueError(f"h0 must be float32, got {h0_dtype}")
    if len(prev_ts_ms) != batch:
        raise ValueError(f"{batch} users but {len(prev_ts_ms)} previous timestamps")
    lengths = [len(events) for events in new_events]
    if batch and min(lengths) < 1:
        raise ValueError("every user passed to fold needs at least one new event")
    return lengths


def fold_steps(
    new_events: Sequence[Sequence[EventFields]], prev_ts_ms: Sequence[int | None], lengths: Sequence[int]
) -> Iterator[tuple[list[int], list[EventFields], list[int | None]]]:
    """The steps of a fold's short rows (at most `FOLD_STEP_LIMIT` new events): step k gives the rows that have a
    k-th event, those events, and the time of the event before each."""
    for k in range(min(max(lengths, default=0), FOLD_STEP_LIMIT)):
        users = [b for b in range(len(lengths)) if k < lengths[b] <= FOLD_STEP_LIMIT]
        if not users:
            return
        events = [new_events[b][k] for b in users]
        previous = [prev_ts_ms[b] if k == 0 else new_events[b][k - 1].ts_ms for b in users]
        yield users, events, previous
