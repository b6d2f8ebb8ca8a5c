"""The session-based next-item protocol of the literature (GRU4Rec, session-rec), beside `models.evaluation`.

Input: per-user time-ordered histories (`EventInput`), each event's session key and whether it is a test event.
GRU4Rec-format files (`SessionId<TAB>ItemId<TAB>Time`) come in through `read_session_tsv`, each session a user
and each row a browse; contract-v1 files through the CLI, which supplies `session_id` (or the user) as the key.

Rules, in this order (`prepare`):

1. item events only (browse, purchase); searches stay in the user's history but are never predicted;
2. inside a session, consecutive repeats of an item are dropped (the first of a run is kept);
3. training sessions shorter than 2 are dropped; the training items are the items of the remaining ones;
4. test items that are not training items are dropped, then repeats again, then test sessions shorter than 2.

Every test session x_0..x_{n-1} gives n-1 predictions: x_{t+1} is ranked among all training items. The encoder
sees everything the user did before the target's event (earlier sessions, searches, purchases, the repeats
step 2 dropped): the profile the stream would have published at that moment. The baselines see what they use:
most-popular nothing, item-kNN the last item x_t.

Ranking rule, for every method: `rank = 1 + #(higher) + #(equal with a smaller candidate index)`, candidates
ordered by training count (most frequent first, ties in order of first appearance in the training sessions, so
the exported TSV files give the same order). Because consecutive repeats are dropped, x_t is never the target;
with `exclude_previous` (the default) x_t is removed from every method's candidates (a method that would repeat
the last item is not punished for what the protocol made impossible, one that would not is not helped).

Statistics: Recall@k and MRR@k for k in `KS`, and 95 % bootstrap intervals over test sessions (predictions of a
session are resampled together, they are not independent), also for the paired difference encoder - baseline
on the same predictions.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from models.encoder import ProfileEncoder
from models.errors import ModelError
from models.events import EventInput, make_event_input

KS: tuple[int, ...] = (5, 10, 20)
BOOTSTRAP_SAMPLES = 1000
DEFAULT_SHRINK = 20.0
_CHUNK = 1024
TSV_HEADER = ("SessionId", "ItemId", "Time")


class ProtocolError(ModelError):
    """The input cannot be evaluated under the standard protocol (bad file, no test session). Check the files."""


@dataclass(frozen=True)
class Session:
    """A protocol session: its user, its items after the rules and each item's position in the user's history."""

    user: int
    items: tuple[int, ...]  # item hashes
    positions: tuple[int, ...]  # index of each item's (first) event in histories[user]


@dataclass(frozen=True)
class StandardData:
    """Histories, the filtered training and test sessions, and the candidate items (most frequent first)."""

    histories: list[list[EventInput]]
    train: list[Session]
    test: list[Session]
    candidates: tuple[int, ...]  # item hashes; column c ranks candidates[c]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def predictions(self) -> int:
        """Number of next-item predictions: sum over test sessions of (length - 1)."""
        return sum(len(s.items) - 1 for s in self.test)


def read_session_tsv(path: Path) -> tuple[list[list[EventInput]], list[list[str]]]:
    """A GRU4Rec-format file as histories (one per session, browse events in file order) and session keys."""
    rows: dict[str, list[EventInput]] = {}
    try:
        with Path(path).open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file, delimiter="\t")
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header[:3]) != TSV_HEADER:
                raise ProtocolError(f"{path}: the first line must be the header {' / '.join(TSV_HEADER)}")
            for number, row in enumerate(reader, start=2):
                problem = _row_problem(row)
                if problem:
                    raise ProtocolError(f"{path}: line {number}: {problem}")
                session, item, time_ms = row[0], row[1], round(float(row[2]) * 1000)
                rows.setdefault(session, []).append(make_event_input("browse", time_ms, item_id=item))
    except UnicodeDecodeError:
        raise ProtocolError(f"{path} is not UTF-8 text") from None
    keys = list(rows)
    return [rows[k] for k in keys], [[k] * len(rows[k]) for k in keys]


_MAX_TIME_S = 2**53 / 1000  # beyond it a float no longer holds whole milliseconds (and int64 arrays come near)


def _row_problem(row: Sequence[str]) -> str:
    """What is wrong with a row of a GRU4Rec-format file ("" if nothing); never quotes the row's values."""
    if len(row) < len(TSV_HEADER):
        return f"not {'<TAB>'.join(TSV_HEADER)} ({len(row)} tab-separated fields)"
    for name, value in zip(TSV_HEADER[:2], row, strict=False):
        if not value.strip():
            return f"{name} is empty"
    try:
        time_s = float(row[2])
    except ValueError:
        return "Time is not a number"
    if not math.isfinite(time_s):
        return "Time is not a finite number"
    if abs(time_s) >= _MAX_TIME_S:
        return "Time is too far from 1970 to be held in whole milliseconds"
    return ""


def write_session_tsv(data: StandardData, path: Path, *, test: bool) -> int:
    """Write the filtered training (or test) sessions in GRU4Rec format; item ids are the item hashes."""
    sessions = data.test if test else data.train
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("\t".join(TSV_HEADER) + "\n")
        for number, s in enumerate(sessions, start=1):
            history = data.histories[s.user]
            for item, j in zip(s.items, s.positions, strict=True):
                out.write(f"{number}\t{item}\t{history[j].ts_ms / 1000:.3f}\n")
                rows += 1
    return rows


def _raw_sessions(
    histories: Sequence[Sequence[EventInput]], keys: Sequence[Sequence[str]], is_test: Sequence[Sequence[bool]]
) -> list[tuple[Session, bool]]:
    """Rules 1-2: per (user, session key), the item events without consecutive repeats, and whether it is a test
    session; raises `ProtocolError` for a session with events in both files."""
    out: list[tuple[Session, bool]] = []
    for b, history in enumerate(histories):
        grouped: dict[str, tuple[list[int], list[int], list[bool]]] = {}
        for j, event in enumerate(history):
            if not event.has_item:
                continue
            items, positions, flags = grouped.setdefault(keys[b][j], ([], [], []))
            flags.append(is_test[b][j])
            if items and items[-1] == event.item_hash:
                continue
            items.append(event.item_hash)
            positions.append(j)
        for items, positions, flags in grouped.values():
            if any(flags) and not all(flags):
                # Its training events would become targets of a model trained on them, and the baselines would
                # lose them: the protocol splits by whole sessions.
                raise ProtocolError(
                    "a session has events in both the training and the test file; the standard protocol splits "
                    "by whole sessions (as `profilestream data split` and GRU4Rec's preprocessing do)"
                )
            out.append((Session(b, tuple(items), tuple(positions)), any(flags)))
    return out


def _dedupe(items: Sequence[int], positions: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    kept_items: list[int] = []
    kept_positions: list[int] = []
    for item, j in zip(items, positions, strict=True):
        if kept_items and kept_items[-1] == item:
            continue
        kept_items.append(item)
        kept_positions.append(j)
    return tuple(kept_items), tuple(kept_positions)


def prepare(
    histories: Sequence[Sequence[EventInput]],
    keys: Sequence[Sequence[str]],
    is_test: Sequence[Sequence[bool]],
) -> StandardData:
    """Apply the protocol's rules (module docstring) to time-ordered histories with session keys and test flags."""
    raw = _raw_sessions(histories, keys, is_test)
    train = [s for s, t in raw if not t and len(s.items) >= 2]
    counts = Counter(item for s in train for item in s.items)
    candidates = tuple(sorted(counts, key=lambda i: -counts[i]))  # ties: first seen first (stable sort)
    test: list[Session] = []
    for s, t in raw:
        if not t:
            continue
        kept = [(i, j) for i, j in zip(s.items, s.positions, strict=True) if i in counts]
        items, positions = _dedupe([i for i, _ in kept], [j for _, j in kept])
        if len(items) >= 2:
            test.append(Session(s.user, items, positions))
    data = StandardData([list(h) for h in histories], train, test, candidates)
    data.counts.update(
        train_rows=sum(len(s.items) for s in train),
        train_sessions=len(train),
        items=len(candidates),
        test_rows=sum(len(s.items) for s in test),
        test_sessions=len(test),
        predictions=data.predictions,
    )
    return data


def session_split(
    histories: Sequence[Sequence[EventInput]], keys: Sequence[Sequence[str]], test_fraction: float
) -> list[list[bool]]:
    """Test flags of a split by session end time: sessions ending at/after the `1 - test_fraction` quantile of
    all event times are test sessions (GRU4Rec's split: the latest sessions, whole)."""
    stamps = np.sort(np.fromiter((e.ts_ms for h in histories for e in h), dtype=np.int64))
    if stamps.size == 0 or not 0.0 < test_fraction < 1.0:
        raise ProtocolError("test_fraction must be in (0, 1) and there must be events")
    cutoff = int(stamps[min(math.floor((1.0 - test_fraction) * stamps.size), stamps.size - 1)])
    flags: list[list[bool]] = []
    for b, history in enumerate(histories):
        ends: dict[str, int] = {}
        for j, event in enumerate(history):
            ends[keys[b][j]] = max(ends.get(keys[b][j], event.ts_ms), event.ts_ms)
        flags.append([ends[keys[b][j]] >= cutoff for j in range(len(history))])
    return flags


# -- methods ---------------------------------------------------------------------------------------------------
Query = tuple[int, int]
"""(test session s, target index t >= 1): rank items[t] of session s."""


class SessionScorer(Protocol):
    """Scores of every candidate column for a batch of queries."""

    name: str

    def score(self, data: StandardData, queries: Sequence[Query]) -> Tensor:
        """[M, C] float32 scores; query (s, t) may use only what came before items[t]."""
        ...


class MostPopular:
    """Training count of each candidate; the same list for every query."""

    name = "most-popular"

    def __init__(self, data: StandardData) -> None:
        counts = Counter(item for s in data.train for item in s.items)
        self.scores = torch.tensor([float(counts[i]) for i in data.candidates], dtype=torch.float32)  # [C]

    def score(self, data: StandardData, queries: Sequence[Query]) -> Tensor:
        """[M, C] popularity rows."""
        return self.scores.unsqueeze(0).expand(len(queries), -1)


class SessionItemKNN:
    """Item-kNN on the last item: session co-occurrence cosine with shrinkage, `co / (sqrt(n_i n_j) + shrink)`."""

    name = "item-kNN"

    def __init__(self, data: StandardData, shrink: float = DEFAULT_SHRINK) -> None:
        column = {item: c for c, item in enumerate(data.candidates)}
        n: Counter[int] = Counter()
        co: Counter[tuple[int, int]] = Counter()
        for s in data.train:
            items = sorted({column[i] for i in s.items})
            n.update(items)
            co.update(combinations(items, 2))
        rows: dict[int, dict[int, float]] = {}
        for (i, j), both in co.items():
            sim = both / (math.sqrt(n[i] * n[j]) + shrink)
            rows.setdefault(i, {})[j] = sim
            rows.setdefault(j, {})[i] = sim
        self.column = column
        self.rows = {
            i: (torch.tensor(list(r), dtype=torch.int64), torch.tensor(list(r.values()), dtype=torch.float32))
            for i, r in rows.items()
        }
        self.num_candidates = len(data.candidates)

    def score(self, data: StandardData, queries: Sequence[Query]) -> Tensor:
        """[M, C] similarity of every candidate to x_t."""
        out = torch.zeros(len(queries), self.num_candidates, dtype=torch.float32)
        for m, (s, t) in enumerate(queries):
            found = self.rows.get(self.column[data.test[s].items[t - 1]])
            if found is not None:
                out[m].index_copy_(0, found[0], found[1])
        return out


class SessionEncoder:
    """The profile encoder: profile after every event of the user before the target's event, dot item vectors.

    Candidates the model has no vector for score -inf, and a target among them counts as a miss (with `train` on
    the same training file there are none).
    """

    def __init__(self, model: ProfileEncoder, data: StandardData, name: str = "encoder") -> None:
        self.name = name
        self.model = model.eval()
        vectors = model.item_vectors()  # [N, D]
        index = torch.tensor([model.features.item_index(i) for i in data.candidates], dtype=torch.int64)  # [C]
        self.items = vectors[index]  # [C, D]
        self.unknown = index == 0  # [C]
        self._cache: dict[int, Tensor] = {}  # user -> profiles after each event [L, D]

    def prepare(self, data: StandardData, users: Iterable[int]) -> None:
        """Encode the users' histories in batches of similar lengths (profiles after each event)."""
        todo = sorted({u for u in users if u not in self._cache}, key=lambda u: len(data.histories[u]))
        for start in range(0, len(todo), 128):
            batch = todo[start : start + 128]
            steps, lengths = self.model.encode_steps([data.histories[u] for u in batch])  # [B, L, D], [B]
            for row, u in enumerate(batch):
                self._cache[u] = steps[row, : int(lengths[row])]

    def score(self, data: StandardData, queries: Sequence[Query]) -> Tensor:
        """[M, C] profile . item vector; unknown candidates -inf."""
        self.prepare(data, (data.test[s].user for s, _ in queries))
        rows = []
        for s, t in queries:
            session = data.test[s]
            j = session.positions[t]
            rows.append(self._cache[session.user][j - 1] if j > 0 else self.model.initial_profile())
        with torch.inference_mode():
            scores = torch.stack(rows) @ self.items.T  # [M, C]
            return scores.masked_fill(self.unknown.unsqueeze(0), -math.inf)


# -- ranking and statistics ------------------------------------------------------------------------------------
def queries_of(data: StandardData) -> list[Query]:
    """Every (session, t >= 1) of the test sessions, in session order."""
    return [(s, t) for s, session in enumerate(data.test) for t in range(1, len(session.items))]


def rank_all(
    scorer: SessionScorer, data: StandardData, queries: Sequence[Query], *, exclude_previous: bool = True
) -> np.ndarray:
    """1-based ranks [M] of each query's target under the shared tie rule."""
    column = {item: c for c, item in enumerate(data.candidates)}
    ranks = np.empty(len(queries), dtype=np.int64)
    arange = None
    for start in range(0, len(queries), _CHUNK):
        part = queries[start : start + _CHUNK]
        scores = scorer.score(data, part).clone()  # [m, C]
        targets = torch.tensor([column[data.test[s].items[t]] for s, t in part], dtype=torch.int64)  # [m]
        if exclude_previous:
            previous = torch.tensor([column[data.test[s].items[t - 1]] for s, t in part], dtype=torch.int64)
            scores.scatter_(1, previous.unsqueeze(1), -math.inf)
        if arange is None or arange.shape[1] != scores.shape[1]:
            arange = torch.arange(scores.shape[1]).unsqueeze(0)
        target = scores.gather(1, targets.unsqueeze(1))  # [m, 1]
        tied_before = ((scores == target) & (arange < targets.unsqueeze(1))).sum(1)
        ranked = (scores > target).sum(1) + tied_before + 1
        # A target the scorer cannot score (an item the model has no vector for) is a miss: the tie rule would
        # rank it among the other unscorable items by popularity, and a model that knows none of the candidates
        # would be reported with most-popular's numbers.
        ranked[torch.isneginf(target.squeeze(1))] = scores.shape[1] + 1
        ranks[start : start + len(part)] = ranked.numpy()
    return ranks


def per_prediction(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Recall@k and MRR@k contribution of each prediction."""
    hit = ranks <= k
    return {f"recall@{k}": hit.astype(np.float64), f"mrr@{k}": np.where(hit, 1.0 / ranks, 0.0)}


def bootstrap_interval(
    values: np.ndarray, session_of: np.ndarray, num_sessions: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of mean(values), resampling whole sessions with replacement."""
    sums = np.bincount(session_of, weights=values, minlength=num_sessions)  # [S]
    sizes = np.bincount(session_of, minlength=num_sessions).astype(np.float64)  # [S]
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for i in range(samples):
        weights = np.bincount(rng.integers(0, num_sessions, num_sessions), minlength=num_sessions)
        means[i] = float(weights @ sums) / max(float(weights @ sizes), 1.0)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class StandardReport:
    """Metrics, intervals and paired differences of every method; `to_json` and `format_table`."""

    counts: dict[str, int]
    metrics: dict[str, dict[str, float]]  # method -> metric -> value
    intervals: dict[str, dict[str, tuple[float, float]]]  # method -> metric@20 -> interval
    paired: dict[str, dict[str, dict[str, Any]]]  # "encoder - baseline" -> metric -> {diff, low, high}
    exclude_previous: bool = True

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "counts": self.counts,
            "metrics": self.metrics,
            "intervals": {m: {k: list(v) for k, v in d.items()} for m, d in self.intervals.items()},
            "paired": self.paired,
            "exclude_previous": self.exclude_previous,
        }

    def format_table(self) -> str:
        """Markdown tables."""
        c = self.counts
        lines = [
            f"standard protocol: train {c['train_rows']} rows / {c['train_sessions']} sessions / {c['items']} items; "
            f"test {c['test_rows']} rows / {c['test_sessions']} sessions; n = {c['predictions']} predictions",
            "",
            "| method | Recall@5 | Recall@10 | Recall@20 | MRR@5 | MRR@10 | MRR@20 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for method, m in self.metrics.items():
            r20, q20 = self.intervals[method]["recall@20"], self.intervals[method]["mrr@20"]
            lines.append(
                f"| {method} | {m['recall@5']:.4f} | {m['recall@10']:.4f} | {m['recall@20']:.4f} "
                f"[{r20[0]:.4f}, {r20[1]:.4f}] | {m['mrr@5']:.4f} | {m['mrr@10']:.4f} | {m['mrr@20']:.4f} "
                f"[{q20[0]:.4f}, {q20[1]:.4f}] |"
            )
        if self.paired:
            lines += ["", "| paired difference | Recall@20 [95 % CI] | MRR@20 [95 % CI] |", "| --- | ---: | ---: |"]
            for pair, d in self.paired.items():
                r, q = d["recall@20"], d["mrr@20"]
                lines.append(
                    f"| {pair} | {r['diff']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] "
                    f"| {q['diff']:+.4f} [{q['low']:+.4f}, {q['high']:+.4f}] |"
                )
        return "\n".join(lines) + "\n"


def evaluate_standard(
    data: StandardData,
    scorers: Sequence[SessionScorer],
    *,
    exclude_previous: bool = True,
    reference: str = "encoder",
    samples: int = BOOTSTRAP_SAMPLES,
) -> StandardReport:
    """Rank every prediction with every scorer; metrics, session-bootstrap intervals, paired differences."""
    queries = queries_of(data)
    if not queries:
        raise ProtocolError("no test session of 2 or more training items: nothing to predict")
    session_of = np.asarray([s for s, _ in queries], dtype=np.int64)
    per_method: dict[str, dict[str, np.ndarray]] = {}
    for scorer in scorers:
        ranks = rank_all(scorer, data, queries, exclude_previous=exclude_previous)
        per_method[scorer.name] = {name: v for k in KS for name, v in per_prediction(ranks, k).items()}
    metrics = {m: {name: float(v.mean()) for name, v in values.items()} for m, values in per_method.items()}
    sessions = len(data.test)
    intervals = {
        m: {name: bootstrap_interval(values[name], session_of, sessions, samples) for name in ("recall@20", "mrr@20")}
        for m, values in per_method.items()
    }
    paired: dict[str, dict[str, dict[str, Any]]] = {}
    for refname in [n for n in per_method if n.startswith(reference)]:
        for other in per_method:
            if other.startswith(reference):
                continue
            pair: dict[str, dict[str, Any]] = {}
            for name in ("recall@20", "mrr@20"):
                diff = per_method[refname][name] - per_method[other][name]
                low, high = bootstrap_interval(diff, session_of, sessions, samples)
                pair[name] = {"diff": float(diff.mean()), "low": low, "high": high}
            paired[f"{refname} - {other}"] = pair
    return StandardReport(dict(data.counts), metrics, intervals, paired, exclude_previous)


def baseline_scorers(data: StandardData) -> list[SessionScorer]:
    """Most-popular and item-kNN fitted on the training sessions."""
    return [MostPopular(data), SessionItemKNN(data)]


def summarise_runs(values: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Median, mean, min and max of each metric over runs (seeds)."""
    out: dict[str, dict[str, float]] = {}
    for name, runs in values.items():
        array = np.asarray(runs, dtype=np.float64)
        out[name] = {
            "median": float(np.median(array)),
            "mean": float(array.mean()),
            "min": float(array.min()),
            "max": float(array.max()),
            "runs": int(array.size),
        }
    return out
