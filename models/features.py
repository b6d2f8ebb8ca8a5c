"""Event features: the vocabularies and buckets that turn an `EventInput` into embedding indices.

`EventInput`, `stable_hash64` and `query_term_hashes` live in the torch-free `models.events` and are re-exported
here. An `EventInput` holds only hashes and numbers, never raw strings, so it can be rebuilt from the per-user
window that `state/` keeps without storing item ids or query text. A `FeatureSpace` maps those hashes and numbers to
embedding indices; it is fitted on training data and saved inside every checkpoint (`features.json`).

Index conventions (fixed, documented for consumers of `features.json` and of the item vectors):

* item index 0 is the unknown/out-of-vocabulary item; known items are 1..num_items-1, most frequent first.
  An event without an item (a search) is masked out, it does not use index 0.
* category index 0 is the unknown category, known categories 1..num_categories-1; absent categories are masked.
* query terms go to hash buckets 1..num_query_buckets; bucket 0 is padding.
* time-gap bucket 0 means "no previous event"; buckets 1.. are log2-scaled milliseconds since the previous event.
* price bucket 0 means "no price"; buckets 1.. are log2-scaled unit prices in cents. Quantity bucket 0 means none.

Log buckets are computed with integer arithmetic (`floor(k*log2(x)) == bit_length(x**k) - 1`), so a bucket
never depends on the platform's floating-point `log`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.errors import FeatureError
from models.events import (
    EVENT_TYPES,
    ITEM_BEARING_TYPES,
    TYPE_CODES,
    EventFields,
    EventInput,
    make_event_input,
    query_term_hashes,
    stable_hash64,
)

__all__ = [
    "EVENT_TYPES",
    "FEATURES_FORMAT_VERSION",
    "ITEM_BEARING_TYPES",
    "OOV_INDEX",
    "TYPE_CODES",
    "EventFields",
    "EventInput",
    "EventTensors",
    "FeatureSpace",
    "SequenceCodes",
    "log_bucket",
    "make_event_input",
    "pad_codes",
    "query_term_hashes",
    "stable_hash64",
]

FEATURES_FORMAT_VERSION = 1
OOV_INDEX = 0
"""Index of the unknown item / unknown category."""


def log_bucket(value: int, per_octave: int, num_buckets: int) -> int:
    """Bucket a non-negative integer on a log2 scale: 1 + floor(per_octave * log2(value + 1)), capped.

    Bucket 0 is left free for "absent"; the result is in 1..num_buckets-1.
    """
    power: int = (max(value, 0) + 1) ** per_octave  # exact integer, whatever its size
    return 1 + min(num_buckets - 2, power.bit_length() - 1)


@dataclass(frozen=True)
class EventTensors:
    """Indices and masks of a batch of events. Leading shape `*` is [B] for one event per user or [B, L]."""

    type_code: Tensor  # [*] int64
    item: Tensor  # [*] int64, 0 = unknown item
    item_mask: Tensor  # [*] float32, 1 where the event has an item
    category: Tensor  # [*] int64, 0 = unknown category
    category_mask: Tensor  # [*] float32, 1 where the event has a category
    query_terms: Tensor  # [*, T] int64, 0 = padding; T = FeatureSpace.max_query_terms
    gap: Tensor  # [*] int64, time-gap bucket
    price: Tensor  # [*] int64, price bucket
    quantity: Tensor  # [*] int64, quantity bucket

    def index_select(self, index: Tensor) -> EventTensors:
        """Rows `index` of the leading (batch) dimension."""
        return EventTensors(
            *(getattr(self, name).index_select(0, index) for name in _TENSOR_FIELDS),
        )


_ROW_FIELDS = ("type_code", "item", "item_mask", "category", "category_mask", "gap", "price", "quantity")
"""The fields of a `FeatureSpace._codes` row, in its order."""
_TENSOR_FIELDS = (
    "type_code",
    "item",
    "item_mask",
    "category",
    "category_mask",
    "query_terms",
    "gap",
    "price",
    "quantity",
)


@dataclass(frozen=True)
class SequenceCodes:
    """Feature indices of L events as numpy arrays: one user's sequence (to build batches), or one event of each
    of L users (`FeatureSpace.event_codes`)."""

    type_code: np.ndarray[Any, np.dtype[np.int64]]  # [L]
    item: np.ndarray[Any, np.dtype[np.int64]]  # [L]
    item_mask: np.ndarray[Any, np.dtype[np.float32]]  # [L]
    category: np.ndarray[Any, np.dtype[np.int64]]  # [L]
    category_mask: np.ndarray[Any, np.dtype[np.float32]]  # [L]
    query_terms: np.ndarray[Any, np.dtype[np.int64]]  # [L, T]
    gap: np.ndarray[Any, np.dtype[np.int64]]  # [L]
    price: np.ndarray[Any, np.dtype[np.int64]]  # [L]
    quantity: np.ndarray[Any, np.dtype[np.int64]]  # [L]

    def __len__(self) -> int:
        return int(self.type_code.shape[0])

    def slice(self, start: int, stop: int) -> SequenceCodes:
        """Events start..stop-1 (each keeps its gap to its true predecessor)."""
        return SequenceCodes(*(getattr(self, name)[start:stop] for name in _TENSOR_FIELDS))


class FeatureSpace:
    """Vocabularies and bucket layouts that map `EventInput`s to embedding indices. Immutable once built."""

    def __init__(
        self,
        *,
        item_hashes: Sequence[int] = (),
        category_hashes: Sequence[int] = (),
        num_query_buckets: int = 4096,
        max_query_terms: int = 8,
        gap_buckets_per_octave: int = 2,
        num_gap_buckets: int = 72,
        price_buckets_per_octave: int = 2,
        num_price_buckets: int = 56,
        num_quantity_buckets: int = 8,
        item_ids: Sequence[str] | None = None,
        item_category_hashes: Sequence[int] | None = None,
    ) -> None:
        """Build from explicit vocabularies (hashes of known items/categories, in index order from 1)."""
        for name, value, minimum in (
            ("num_query_buckets", num_query_buckets, 1),
            ("max_query_terms", max_query_terms, 1),
            ("gap_buckets_per_octave", gap_buckets_per_octave, 1),
            ("num_gap_buckets", num_gap_buckets, 3),
            ("price_buckets_per_octave", price_buckets_per_octave, 1),
            ("num_price_buckets", num_price_buckets, 3),
            ("num_quantity_buckets", num_quantity_buckets, 2),
        ):
            if not isinstance(value, int) or value < minimum:
                raise FeatureError(f"{name} must be an integer >= {minimum}, got {value!r}")
        self.item_hashes: tuple[int, ...] = tuple(int(h) for h in item_hashes)
        self.category_hashes: tuple[int, ...] = tuple(int(h) for h in category_hashes)
        self._item_index = {h: i + 1 for i, h in enumerate(self.item_hashes)}
        self._category_index = {h: i + 1 for i, h in enumerate(self.category_hashes)}
        if len(self._item_index) != len(self.item_hashes) or 0 in self._item_index:
            raise FeatureError("item vocabulary has duplicate or zero hashes")
        if len(self._category_index) != len(self.category_hashes) or 0 in self._category_index:
            raise FeatureError("category vocabulary has duplicate or zero hashes")
        if item_ids is not None and len(item_ids) != len(self.item_hashes):
            raise FeatureError("item_ids must align with item_hashes")
        self.item_ids: tuple[str, ...] | None = tuple(item_ids) if item_ids is not None else None
        if item_category_hashes is not None and len(item_category_hashes) != len(self.item_hashes):
            raise FeatureError("item_category_hashes must align with item_hashes")
        # Each known item's category (its most frequent one in the fitted data; 0 for none): lets the encoder give
        # an item's vector its category's part (EncoderConfig.item_category_vectors).
        self.item_category_hashes: tuple[int, ...] | None = (
            tuple(int(h) for h in item_category_hashes) if item_category_hashes is not None else None
        )
        self.num_query_buckets = num_query_buckets
        self.max_query_terms = max_query_terms
        self.gap_buckets_per_octave = gap_buckets_per_octave
        self.num_gap_buckets = num_gap_buckets
        self.price_buckets_per_octave = price_buckets_per_octave
        self.num_price_buckets = num_price_buckets
        self.num_quantity_buckets = num_quantity_buckets

    # -- sizes -------------------------------------------------------------------------------------------------
    @property
    def num_items(self) -> int:
        """Rows of the item table: known items plus the unknown item at index 0."""
        return len(self.item_hashes) + 1

    @property
    def num_categories(self) -> int:
        """Rows of the category table: known categories plus the unknown category at index 0."""
        return len(self.category_hashes) + 1

    # -- fitting -----------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        sequences: Iterable[Sequence[EventInput]],
        min_item_count: int = 1,
        min_category_count: int = 1,
        *,
        item_ids: Mapping[int, str] | None = None,
        item_categories: bool = False,
        **layout: int,
    ) -> FeatureSpace:
        """Learn item and category vocabularies from event sequences.

        Items seen at least `min_item_count` times in item-bearing events are known, ordered by count (most
        frequent first) then by hash, so the result does not depend on input order. `item_ids` optionally maps
        item hashes to their ids, kept for export. With `item_categories` each item's most frequent known category
        is recorded (ties: the smallest hash); without it the space has none and its JSON is the one written before
        the field existed, so code of that time can still read it. `layout` overrides bucket sizes (see `__init__`).
        """
        item_counts: Counter[int] = Counter()
        category_counts: Counter[int] = Counter()
        item_category_counts: Counter[tuple[int, int]] = Counter()
        for sequence in sequences:
            for event in sequence:
                if event.has_item:
                    item_counts[event.item_hash] += 1
                    if item_categories and event.category_hash != 0:
                        item_category_counts[event.item_hash, event.category_hash] += 1
                if event.category_hash != 0:
                    category_counts[event.category_hash] += 1
        items = _vocabulary(item_counts, min_item_count)
        categories = _vocabulary(category_counts, min_category_count)
        ids = None
        if item_ids is not None:
            ids = [item_ids.get(h, "") for h in items]
        known_categories = set(categories)
        best: dict[int, tuple[int, int]] = {}  # item -> (count, -category hash): most frequent, then smallest hash
        for (item, category), n in item_category_counts.items():
            if category in known_categories and (n, -category) > best.get(item, (0, 0)):
                best[item] = (n, -category)
        found = [-best[h][1] if h in best else 0 for h in items] if item_categories else None
        return cls(
            item_hashes=items,
            category_hashes=categories,
            item_ids=ids,
            item_category_hashes=found,
            **layout,
        )

    # -- lookups -----------------------------------------------------------------------------------------------
    def item_index(self, item_hash: int) -> int:
        """Index of an item hash; unknown items map to `OOV_INDEX` (never raises)."""
        return self._item_index.get(item_hash, OOV_INDEX)

    def category_index(self, category_hash: int) -> int:
        """Index of a category hash; unknown categories map to `OOV_INDEX` (never raises)."""
        return self._category_index.get(category_hash, OOV_INDEX)

    def item_category_indices(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """[num_items] category-table index of each item row (0: no known category, the unknown item included)."""
        out = np.zeros(self.num_items, dtype=np.int64)
        if self.item_category_hashes is not None:
            out[1:] = [self.category_index(h) if h else OOV_INDEX for h in self.item_category_hashes]
        return out

    def gap_bucket(self, ts_ms: int, prev_ts_ms: int | None) -> int:
        """Bucket of the time since the user's previous event; 0 when there is none, negative gaps count as 0."""
        if prev_ts_ms is None:
            return 0
        return log_bucket(ts_ms - prev_ts_ms, self.gap_buckets_per_octave, self.num_gap_buckets)

    def price_bucket(self, price: float) -> int:
        """Bucket of a unit price (log2 of cents); 0 for no price."""
        if not price > 0.0:  # also catches NaN
            return 0
        cents = int(min(price, 1e15) * 100.0)
        return log_bucket(cents, self.price_buckets_per_octave, self.num_price_buckets)

    def quantity_bucket(self, quantity: int) -> int:
        """Quantity capped at num_quantity_buckets-1; 0 for none."""
        return max(0, min(quantity, self.num_quantity_buckets - 1))

    def query_buckets(self, terms: tuple[int, ...]) -> list[int]:
        """Hash buckets (1..num_query_buckets) of the first max_query_terms terms, padded with 0."""
        if not terms:
            return [0] * self.max_query_terms
        buckets = [(h % self.num_query_buckets) + 1 for h in terms[: self.max_query_terms]]
        return buckets + [0] * (self.max_query_terms - len(buckets))

    def _codes(self, event: EventFields, prev_ts_ms: int | None) -> tuple[int, int, float, int, float, int, int, int]:
        # Runs for every event the stream folds: the helpers above are inlined (same results).
        type_code = event.type_code
        item_hash, category_hash = event.item_hash, event.category_hash
        has_item = item_hash != 0 and type_code in ITEM_BEARING_TYPES
        quantity = event.quantity
        return (
            type_code,
            self._item_index.get(item_hash, OOV_INDEX) if has_item else OOV_INDEX,
            1.0 if has_item else 0.0,
            self._category_index.get(category_hash, OOV_INDEX) if category_hash else OOV_INDEX,
            1.0 if category_hash else 0.0,
            0 if prev_ts_ms is None else self.gap_bucket(event.ts_ms, prev_ts_ms),
            self.price_bucket(event.price) if event.price else 0,
            0 if quantity <= 0 else min(quantity, self.num_quantity_buckets - 1),
        )

    # -- tensors -----------------------------------------------------------------------------------------------
    def tensorize(self, events: Sequence[EventFields], prev_ts_ms: Sequence[int | None]) -> EventTensors:
        """One event per user -> tensors of leading shape [B]. `prev_ts_ms[b]` is user b's previous event time."""
        codes = self.event_codes(events, prev_ts_ms)
        return EventTensors(*(torch.from_numpy(getattr(codes, name)) for name in _TENSOR_FIELDS))

    def event_codes(self, events: Sequence[EventFields], prev_ts_ms: Sequence[int | None]) -> SequenceCodes:
        """One event per user -> their feature indices [B] (numpy); `prev_ts_ms[b]` is user b's previous time."""
        if len(events) != len(prev_ts_ms):
            raise FeatureError(f"{len(events)} events but {len(prev_ts_ms)} previous timestamps")
        rows = [self._codes(e, p) for e, p in zip(events, prev_ts_ms, strict=True)]
        terms = [self.query_buckets(e.query_terms) for e in events]
        return _codes_from_rows(rows, terms, self.max_query_terms)

    def sequence_codes(self, sequence: Sequence[EventFields], prev_ts_ms: int | None = None) -> SequenceCodes:
        """Feature indices of one user's time-ordered events; `prev_ts_ms` is the time of the event before them."""
        rows = []
        previous = prev_ts_ms
        for event in sequence:
            rows.append(self._codes(event, previous))
            previous = event.ts_ms
        terms = [self.query_buckets(e.query_terms) for e in sequence]
        return _codes_from_rows(rows, terms, self.max_query_terms)

    def tensorize_sequences(
        self,
        sequences: Sequence[Sequence[EventFields]],
        prev_ts_ms: Sequence[int | None] | None = None,
    ) -> tuple[EventTensors, Tensor]:
        """Whole sequences -> (tensors of leading shape [B, L] right-padded, lengths [B] int64)."""
        previous = prev_ts_ms if prev_ts_ms is not None else [None] * len(sequences)
        if len(previous) != len(sequences):
            raise FeatureError(f"{len(sequences)} sequences but {len(previous)} previous timestamps")
        # The same tensors as `pad_codes` over `sequence_codes`, built from one table of every event's codes
        # with one scatter per field instead of arrays per sequence: the stream re-folds whole windows here.
        rows: list[tuple[int, int, float, int, float, int, int, int]] = []
        terms: list[list[int]] = []
        for sequence, first_previous in zip(sequences, previous, strict=True):
            before = first_previous
            for event in sequence:
                rows.append(self._codes(event, before))
                terms.append(self.query_buckets(event.query_terms))
                before = event.ts_ms
        lengths = np.asarray([len(s) for s in sequences], dtype=np.int64)  # [B]
        batch, max_len = len(sequences), max(int(lengths.max()) if len(sequences) else 0, 1)
        starts = np.cumsum(lengths) - lengths  # [B]
        row_of = np.repeat(np.arange(batch), lengths)  # [N]
        step_of = np.arange(len(rows)) - np.repeat(starts, lengths)  # [N]
        # float64 holds every code exactly (indices and buckets are far below 2**53).
        table = np.asarray(rows, dtype=np.float64).reshape(len(rows), 8)  # [N, 8]
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        for column, name in enumerate(_ROW_FIELDS):
            dtype = np.float32 if name.endswith("_mask") else np.int64
            out = np.zeros((batch, max_len), dtype=dtype)
            out[row_of, step_of] = table[:, column]
            arrays[name] = out
        query = np.zeros((batch, max_len, self.max_query_terms), dtype=np.int64)
        query[row_of, step_of] = np.asarray(terms, dtype=np.int64).reshape(len(rows), self.max_query_terms)
        arrays["query_terms"] = query
        tensors = EventTensors(*(torch.from_numpy(arrays[name]) for name in _TENSOR_FIELDS))
        return tensors, torch.from_numpy(lengths)

    # -- persistence -------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description; `from_json(to_json())` rebuilds an identical space."""
        data: dict[str, Any] = {
            "format_version": FEATURES_FORMAT_VERSION,
            "item_hashes": list(self.item_hashes),
            "category_hashes": list(self.category_hashes),
            "num_query_buckets": self.num_query_buckets,
            "max_query_terms": self.max_query_terms,
            "gap_buckets_per_octave": self.gap_buckets_per_octave,
            "num_gap_buckets": self.num_gap_buckets,
            "price_buckets_per_octave": self.price_buckets_per_octave,
            "num_price_buckets": self.num_price_buckets,
            "num_quantity_buckets": self.num_quantity_buckets,
        }
        if self.item_ids is not None:
            data["item_ids"] = list(self.item_ids)
        if self.item_category_hashes is not None:
            data["item_category_hashes"] = list(self.item_category_hashes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSpace:
        """Rebuild from `to_json` output; raises `FeatureError` on a wrong format or shape."""
        if not isinstance(data, Mapping):
            raise FeatureError("feature space must be a JSON object")
        version = data.get("format_version")
        if version != FEATURES_FORMAT_VERSION:
            raise FeatureError(f"feature space format_version {version!r} is not {FEATURES_FORMAT_VERSION}")
        known = {
            "format_version",
            "item_hashes",
            "category_hashes",
            "item_ids",
            "item_category_hashes",
            "num_query_buckets",
            "max_query_terms",
            "gap_buckets_per_octave",
            "num_gap_buckets",
            "price_buckets_per_octave",
            "num_price_buckets",
            "num_quantity_buckets",
        }
        unknown = set(data) - known
        if unknown:
            raise FeatureError(f"feature space has unknown fields {sorted(unknown)}")
        items = _int_list(data.get("item_hashes", []), "item_hashes")
        categories = _int_list(data.get("category_hashes", []), "category_hashes")
        ids = data.get("item_ids")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise FeatureError("item_ids must be a list of strings")
        item_categories = data.get("item_category_hashes")
        if item_categories is not None:
            item_categories = _int_list(item_categories, "item_category_hashes")
        named = {"format_version", "item_hashes", "category_hashes", "item_ids", "item_category_hashes"}
        layout = {k: data[k] for k in known - named}
        return cls(
            item_hashes=items,
            category_hashes=categories,
            item_ids=ids,
            item_category_hashes=item_categories,
            **layout,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureSpace) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((self.item_hashes, self.category_hashes, self.num_query_buckets))

    def __repr__(self) -> str:
        return (
            f"FeatureSpace(num_items={self.num_items}, num_categories={self.num_categories}, "
            f"num_query_buckets={self.num_query_buckets})"
        )


def pad_codes(codes: Sequence[SequenceCodes], max_query_terms: int) -> tuple[EventTensors, Tensor]:
    """Right-pad sequence codes into [B, L] tensors (padding rows are all-zero and masked); lengths [B]."""
    batch = len(codes)
    lengths = np.asarray([len(c) for c in codes], dtype=np.int64)  # [B]
    max_len = max(int(lengths.max()) if batch else 0, 1)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for name in _TENSOR_FIELDS:
        dtype = np.float32 if name.endswith("_mask") else np.int64
        shape: tuple[int, ...] = (batch, max_len, max_query_terms) if name == "query_terms" else (batch, max_len)
        out = np.zeros(shape, dtype=dtype)
        for b, c in enumerate(codes):
            out[b, : len(c)] = getattr(c, name)
        arrays[name] = out
    tensors = EventTensors(*(torch.from_numpy(arrays[name]) for name in _TENSOR_FIELDS))
    return tensors, torch.from_numpy(lengths)


def _codes_from_rows(
    rows: Sequence[tuple[int, int, float, int, float, int, int, int]],
    terms: Sequence[list[int]],
    max_query_terms: int,
) -> SequenceCodes:
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    return SequenceCodes(
        type_code=np.asarray(columns[0], dtype=np.int64).reshape(n),
        item=np.asarray(columns[1], dtype=np.int64).reshape(n),
        item_mask=np.asarray(columns[2], dtype=np.float32).reshape(n),
        category=np.asarray(columns[3], dtype=np.int64).reshape(n),
        category_mask=np.asarray(columns[4], dtype=np.float32).reshape(n),
        query_terms=np.asarray(terms, dtype=np.int64).reshape(n, max_query_terms),
        gap=np.asarray(columns[5], dtype=np.int64).reshape(n),
        price=np.asarray(columns[6], dtype=np.int64).reshape(n),
        quantity=np.asarray(columns[7], dtype=np.int64).reshape(n),
    )


def _vocabulary(counts: Counter[int], min_count: int) -> list[int]:
    kept = [(h, n) for h, n in counts.items() if n >= min_count]
    kept.sort(key=lambda pair: (-pair[1], pair[0]))
    return [h for h, _ in kept]


def _int_list(value: object, name: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise FeatureError(f"{name} must be a list of integers")
    return value
