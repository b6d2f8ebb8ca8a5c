"""Which index should the recommender use? Recall@k against exact search and single-query latency.

Item vectors come from a seeded generator shaped like the encoder's output (see :func:`item_vectors`): clustered
directions, norms that vary (the norm carries popularity) and dot-product scoring. Queries are L2-normalised
like published profiles. Every candidate answers the same queries one at a time, as the service does; recall@k
is the share of the exact top k it returns.

    python -m bench.ann --items 50000 --dim 64 --queries 2000 --k 20

Libraries that are not installed are reported as such and skipped (install ``usearch`` / ``faiss-cpu``).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.stats import percentile
from streams.recommend.index import ExactIndex

Search = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Row:
    """One candidate's measurement."""

    name: str
    build_s: float
    recall: float
    p50_us: float
    p99_us: float


def item_vectors(items: int, dim: int, seed: int, clusters: int = 256) -> np.ndarray:
    """Clustered directions (taste groups) with log-normal norms (popularity), float32 [items, dim]."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    which = rng.integers(0, clusters, items)
    directions = centres[which] + 0.6 * rng.standard_normal((items, dim)) / np.sqrt(dim)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norms = rng.lognormal(0.0, 0.35, items)
    out: np.ndarray = (directions * norms[:, None]).astype(np.float32)
    return out


def queries(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Profiles: a normalised mix of a few item directions plus noise, as a user's recent history gives."""
    rng = np.random.default_rng(seed + 1)
    picks = rng.integers(0, len(vectors), (count, 5))
    mixed = vectors[picks].sum(axis=1) + 0.3 * rng.standard_normal((count, vectors.shape[1]))
    out: np.ndarray = (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)
    return out


def _exact(vectors: np.ndarray) -> Search:
    index = ExactIndex(vectors)
    return lambda q, k: index.search(q, k)[0]


def _faiss_hnsw(vectors: np.ndarray, m: int, ef_search: int) -> Search:
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    index.add(vectors)
    index.hnsw.efSearch = ef_search
    return lambda q, k: index.search(q[None, :], k)[1][0]


def _usearch(vectors: np.ndarray, connectivity: int, expansion_search: int) -> Search:
    from usearch.index import Index

    index = Index(
        ndim=vectors.shape[1],
        metric="ip",
        dtype="f32",
        connectivity=connectivity,
        expansion_add=200,
        expansion_search=expansion_search,
    )
    index.add(np.arange(len(vectors)), vectors, threads=1)
    return lambda q, k: np.asarray(index.search(q, k, threads=1).keys)


LIBRARIES = ("exact", "faiss", "usearch")


def candidates(vectors: np.ndarray, libraries: tuple[str, ...] = LIBRARIES) -> list[tuple[str, Callable[[], Search]]]:
    """Every candidate of ``libraries`` that can run here, with the parameters measured."""
    found: list[tuple[str, Callable[[], Search]]] = []
    if "exact" in libraries:
        found.append(("exact numpy (matmul + argpartition)", functools.partial(_exact, vectors)))
    if "faiss" in libraries and importlib.util.find_spec("faiss") is not None:
        for ef in (64, 256):
            found.append((f"faiss-cpu HNSWFlat M=32 efSearch={ef}", functools.partial(_faiss_hnsw, vectors, 32, ef)))
    if "usearch" in libraries and importlib.util.find_spec("usearch") is not None:
        for ef in (64, 256):
            found.append((f"usearch HNSW M=32 ef={ef}", functools.partial(_usearch, vectors, 32, ef)))
    return found


def measure(name: str, build: Callable[[], Search], qs: np.ndarray, truth: np.ndarray, k: int) -> Row:
    """Build the index, then time each query alone and compare with the exact top k."""
    started = time.perf_counter()
    search = build()
    build_s = time.perf_counter() - started
    for q in qs[:50]:  # warm caches and lazy initialisation
        search(q, k)
    hits = 0
    latencies_us: list[float] = []
    for q, want in zip(qs, truth, strict=True):
        t0 = time.perf_counter()
        got = search(q, k)
        latencies_us.append((time.perf_counter() - t0) * 1e6)
        hits += len(set(got.tolist()) & set(want.tolist()))
    latencies_us.sort()
    return Row(name, build_s, hits / (len(qs) * k), percentile(latencies_us, 50), percentile(latencies_us, 99))


def table(rows: list[Row], items: int, dim: int, k: int) -> str:
    """The Markdown table of docs/recommend.md."""
    lines = [
        f"| index ({items:,} items x {dim} dims, k={k}) | build s | recall@{k} | p50 us | p99 us |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r.name} | {r.build_s:.2f} | {r.recall:.4f} | {r.p50_us:.0f} | {r.p99_us:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table with the commit it ran on."""
    parser = argparse.ArgumentParser(prog="python -m bench.ann", description=__doc__)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--libraries", default=",".join(LIBRARIES), help="comma-separated subset of exact,faiss,usearch"
    )
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    load_before = os.getloadavg()[0]
    vectors = item_vectors(args.items, args.dim, args.seed)
    qs = queries(vectors, args.queries, args.seed)
    exact = ExactIndex(vectors)
    truth = np.stack([exact.search(q, args.k)[0] for q in qs])
    libraries = tuple(name.strip() for name in args.libraries.split(","))
    rows = [measure(name, build, qs, truth, args.k) for name, build in candidates(vectors, libraries)]
    # The load average says whether other work shared the cores (latency percentiles suffer, recall does not).
    print(
        f"commit {commit.stdout.strip() or 'unknown'}; seed {args.seed}; {args.queries} queries, one at a time; "
        f"{os.cpu_count()} cores, 1-minute load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after"
    )
    print(table(rows, args.items, args.dim, args.k))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
