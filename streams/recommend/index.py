"""The item index of one model version: exact inner-product search over a float32 matrix.

Exact search, not an ANN library: at our catalogue sizes (up to tens of thousands of items, 64 dimensions)
one matrix-vector product plus a partial sort answers a query in about a millisecond with recall 1. The HNSW
indexes measured beside it (faiss-cpu, usearch) were no faster at a recall of 0.995, faster only by
missing 7 % of the top 20, and took 20 to 75 s to build per model version (docs/recommend.md has the table and
its command). Exact search also makes exclusion exact: excluded rows are masked before the top k is taken, so
a user with many purchases still gets k answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


class ExactIndex:
    """Dot-product top k over every row of ``vectors`` [N, D] (rows are items in the caller's order)."""

    def __init__(self, vectors: FloatMatrix) -> None:
        if vectors.ndim != 2 or vectors.shape[0] == 0:
            raise ValueError("an index needs a non-empty [items, dim] matrix")
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def vectors(self) -> npt.NDArray[np.float32]:
        """The rows as given (float32), in the caller's order."""
        return self._vectors

    @property
    def size(self) -> int:
        """Number of items."""
        return int(self._vectors.shape[0])

    @property
    def dim(self) -> int:
        """Vector dimension (a query must have it)."""
        return int(self._vectors.shape[1])

    def search(
        self, query: npt.ArrayLike, k: int, exclude: Sequence[int] | Rows = ()
    ) -> tuple[Rows, npt.NDArray[np.floating[Any]]]:
        """The rows of the ``k`` highest dot products with ``query`` and their scores, best first, never one of
        ``exclude``. Fewer than ``k`` only when fewer items remain. Raises ``ValueError`` for a query of another
        dimension (a profile of another model must never be scored here)."""
        q = np.asarray(query, dtype=np.float32)
        if q.shape != (self.dim,):
            raise ValueError(f"query has shape {q.shape}, the index holds {self.dim}-dimensional items")
        if k < 1:
            raise ValueError("k must be at least 1")
        with np.errstate(over="ignore", invalid="ignore"):  # handled below
            scores: npt.NDArray[np.floating[Any]] = self._vectors @ q  # [N]
        if not np.isfinite(scores).all():
            # Values near float32's limit (the contracts allow any finite float32) overflow a float32 sum to inf, or
            # NaN with mixed signs, and such rows would be dropped; a float64 sum of float32 products cannot.
            scores = self._vectors.astype(np.float64) @ q.astype(np.float64)
        excluded = np.unique(np.asarray(exclude, dtype=np.int64))
        scores[excluded] = -np.inf
        k = min(k, self.size - len(excluded))
        if k == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        top = np.argpartition(-scores, k - 1)[:k] if k < self.size else np.arange(self.size)
        order = top[np.argsort(-scores[top], kind="stable")]
        order = order[np.isfinite(scores[order])][:k]
        return order.astype(np.int64), scores[order]
