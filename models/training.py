"""Training of the profile encoder on a next-item objective.

Objective: after each event the profile must score the item of the user's next item-bearing event (browse or
purchase) above other items. The loss is a **sampled softmax with popularity-sampled negatives and logQ
correction** (shared negatives per batch, drawn from item counts ** `negative_alpha`, accidental hits masked).
When the catalogue is no larger than the negative budget it becomes the exact full softmax (`objective` in the
metrics says which was used). Why this and not GRU4Rec's BPR-max: measured on both shops' validation splits
(docs/evaluation.md), BPR-max was level on YOOCHOOSE and 0.09 Recall@20 behind on trivago, and it adds a score
regulariser (`bpreg`) to tune; on trivago's larger catalogue the sampled negatives also beat the exact softmax
(Recall@20 +0.038), so a larger negative budget is not a free improvement either.

Data handling, all deterministic for a given seed (torch and numpy RNGs are seeded locally; the caller's global
RNG state is restored):

* each user's events are sorted by time (stable); the validation split is by time: events at or after the
  `1 - validation_fraction` quantile of all event times are validation targets, ranked with the user's full
  history before them; the vocabulary and the training windows use only the events before the cutoff;
* long histories are cut into windows of `max_seq_len` events overlapping by half: each target is trained once,
  with at least `max_seq_len // 2` events of context (the stream carries the state over the whole history; a
  GRU's memory is short enough that this is the same thing in practice);
* batches group windows of similar length;
* by default every event is trained on for the whole learning-rate schedule: `epochs` (10) epochs, the rate
  multiplied by `lr_decay` (0.85) after each, so the last epoch runs at 23 % of the first (GRU4Rec's published
  parameter files also train a fixed 10 epochs), and the model kept is the mean of the weights at the ends of the
  last `average_epochs` (5) epochs, at most the second half of the schedule; no data is held out, because nothing
  is chosen from it;
* with `validation_fraction` > 0, early stopping on validation MRR@k with `patience`, keeping the best epoch's
  weights (`epochs` is then the most it runs); with `refit`, the number of epochs so chosen is trained again
  from a fresh initialisation on every event (training and validation parts, vocabulary included): on a time
  split the validation period is the most recent data and holds items nothing earlier has. The validation
  metrics in the result are those of the first phase (the refit model has seen those events). Without the
  refit the model returned was fitted on the events before the cutoff only: `fitted_before_ms` in the result
  says so, and `fitted_sequences` gives those events (for the data fingerprint a checkpoint records).

Seeds: with a constant learning rate, early stopping kept 2 to 4 epochs and the seed alone moved Recall@20 by
0.014 on a validation split of YOOCHOOSE's training file; the models were caught at different points of a
still-moving descent. The decay (`lr_decay` 0.7) let the late epochs settle: spread 0.006, MRR@20 +0.012. Early
stopping itself stayed a source of seed noise where validation is small: on trivago's split its validation
MRR@20 moved by less than 0.003 between epochs, so the epoch it kept (5, 11 and 1 for seeds 0, 1, 2) was chance,
and Recall@20 on the split differed by 0.057 between seeds. The whole schedule without early stopping: spread
0.016 and mean Recall@20 +0.025 there; on YOOCHOOSE's split the same MRR@20 and Recall@20 +0.005, with no
second phase. (On trivago's test set it narrowed the MRR@20 spread tenfold but not the Recall@20 spread, 6 of
104 predictions.) Then a slower decay (0.85) with the mean of the last five epochs' weights (stochastic weight
averaging: the late epochs still move, each seed's wandering around the minimum averages out): on trivago's split
Recall@20 0.779 for all three seeds (against 0.738-0.754) and MRR@20 +0.015; on YOOCHOOSE's split level (Recall@20
+0.002, MRR@20 -0.001). The slower decay alone gave the higher mean but a spread of 0.025; the mean of five
epochs at a decay of 0.7 a spread of 0.041. docs/evaluation.md, "What moved the encoder", has the tables.

Next different item (`distinct_targets`): the session-based protocol of the literature drops consecutive repeats,
so its target always differs from the last item. With the option, a next item equal to the last item-bearing
event's item is not a training target, and early stopping ranks only such validation targets, with the last item
taken out of the candidates (`next_item_ranks(exclude_previous=True)`), as that protocol does. `validate_distinct`
does only the second half: every target is trained on, early stopping ranks the next different items.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor
from tqdm import tqdm

from models.encoder import EncoderConfig, ProfileEncoder
from models.errors import TrainingError
from models.features import OOV_INDEX, EventInput, FeatureSpace, SequenceCodes, pad_codes
from models.ranking import next_item_ranks, ranking_metrics

_GROUP_BATCHES = 32  # windows are sorted by length inside groups of this many batches


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters."""

    seed: int = 0
    epochs: int = 10  # the learning-rate schedule's length; the most epochs when early stopping
    batch_size: int = 64  # windows (user histories) per batch
    lr: float = 2e-3  # Adam
    negatives: int = 4096  # shared sampled negatives per batch; full softmax if the catalogue is not larger
    negative_alpha: float = 0.75  # popularity ** alpha sampling distribution
    patience: int = 2  # epochs without a better validation MRR before stopping
    max_seq_len: int = 50  # window length (events) for back-propagation through time
    validation_fraction: float = 0.0  # share of events (by time) held out for early stopping; 0: none
    min_item_count: int = 1  # items seen fewer times in training map to the unknown item
    num_query_buckets: int = 4096
    grad_clip_norm: float = 5.0
    max_validation_targets: int = 20_000  # the first ones, in user order, to bound the time per epoch
    eval_k: int = 20
    num_threads: int = 2
    refit: bool = False  # retrain on all events for the early-stopped number of epochs (module docstring)
    # Train and early-stop on the next *different* item only (module docstring, "Next different item").
    distinct_targets: bool = False
    # Early-stop on the next different item only (last item out of the candidates), still training on every target.
    validate_distinct: bool = False
    # Learning rate multiplier after each epoch (1.0: constant). Below 1 the late epochs move the weights less, so
    # the schedule settles and the seed matters less (module docstring, "Seeds").
    lr_decay: float = 0.85
    # The model kept is the mean of the weights at the ends of the schedule's last this many epochs, never from its
    # first half (`averaged_epochs`; 0 or 1: the last epoch's weights). Without early stopping only (module
    # docstring, "Seeds").
    average_epochs: int = 5

    def __post_init__(self) -> None:
        checks = (
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0.0, "lr must be positive"),
            (0.0 < self.lr_decay <= 1.0, "lr_decay must be in (0, 1]"),
            (self.negatives >= 1, "negatives must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.max_seq_len >= 2, "max_seq_len must be >= 2"),
            (0.0 <= self.validation_fraction < 1.0, "validation_fraction must be in [0, 1)"),
            (self.min_item_count >= 1, "min_item_count must be >= 1"),
            (self.eval_k >= 1, "eval_k must be >= 1"),
            (self.num_threads >= 1, "num_threads must be >= 1"),
            (self.average_epochs >= 0, "average_epochs must be >= 0"),
        )
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)

    @property
    def averaged_epochs(self) -> int:
        """How many of the last epochs' weights the kept model is the mean of: `average_epochs`, but at most half
        the schedule, since the weights of its first epochs are far from where it ends (a 3-epoch schedule
        averaged over all three epochs ranked worse than its last epoch alone)."""
        return max(min(self.average_epochs, self.epochs // 2), 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise TrainingError(f"unknown training options {sorted(unknown)}")
        return cls(**data)


def data_fingerprint(sequences: Sequence[Sequence[EventInput]]) -> str:
    """SHA-256 over every event field of every sequence, in order; names the training data in checkpoints."""
    digest = hashlib.sha256()
    for sequence in sequences:
        digest.update(b"U")
        for e in sequence:
            digest.update(
                f"{e.type_code},{e.ts_ms},{e.item_hash},{e.category_hash},{e.query_terms},"
                f"{e.price!r},{e.quantity};".encode()
            )
    return digest.hexdigest()


def fitted_sequences(sequences: Sequence[Sequence[EventInput]], metrics: Mapping[str, Any]) -> list[list[EventInput]]:
    """The part of `sequences` that the model `train(sequences, ...)` returned with `metrics` was fitted on.

    Every event, unless early stopping kept the first phase's model (no refit): then each user's events before
    the validation cutoff (`metrics["fitted_before_ms"]`), which only chose the epoch. Histories are time-sorted
    as `train` sorts them, and users left without events are dropped. Metrics of checkpoints written before the
    key existed count as fitted on every event.
    """
    cutoff = metrics.get("fitted_before_ms")
    histories = [sorted(s, key=lambda e: e.ts_ms) for s in sequences]
    if cutoff is None:
        return [h for h in histories if h]
    fitted = [[e for e in h if e.ts_ms < cutoff] for h in histories]
    return [h for h in fitted if h]


@dataclass(frozen=True)
class TimeSplit:
    """Training parts and validation targets of a set of histories (see `split_by_time`)."""

    train: list[list[EventInput]]  # events before the cutoff, per user (may be empty)
    histories: list[list[EventInput]]  # full time-ordered history per user
    validation_targets: list[list[int]]  # positions in `histories` of item-bearing events at/after the cutoff
    cutoff_ms: int | None


def split_by_time(sequences: Sequence[Sequence[EventInput]], validation_fraction: float) -> TimeSplit:
    """Sort each history by time and split all events at the `1 - validation_fraction` time quantile."""
    histories = [sorted(s, key=lambda e: e.ts_ms) for s in sequences]
    stamps = np.sort(np.fromiter((e.ts_ms for h in histories for e in h), dtype=np.int64))
    if validation_fraction <= 0.0 or stamps.size == 0:
        return TimeSplit([list(h) for h in histories], histories, [[] for _ in histories], None)
    index = min(math.floor((1.0 - validation_fraction) * stamps.size), stamps.size - 1)
    cutoff = int(stamps[index])
    train = [[e for e in h if e.ts_ms < cutoff] for h in histories]
    targets = [[j for j, e in enumerate(h) if j > 0 and e.ts_ms >= cutoff and e.has_item] for h in histories]
    return TimeSplit(train, histories, targets, cutoff)


@dataclass(frozen=True)
class _Window:
    codes: SequenceCodes  # the window's events
    targets: np.ndarray  # [L] int64: item index of the next event to predict after position p, or -1


def _last_items(codes: SequenceCodes) -> np.ndarray:
    """[L] item index of the last item-bearing event at or before each position (0 before the first one)."""
    has_item = codes.item_mask > 0  # [L]
    last = np.where(has_item, np.arange(len(codes)), -1)  # [L]
    np.maximum.accumulate(last, out=last)
    return np.where(last >= 0, codes.item[np.maximum(last, 0)], OOV_INDEX)


def _windows(codes: SequenceCodes, max_len: int, *, distinct: bool = False) -> Iterator[_Window]:
    """Windows of `max_len` overlapping by half; targets assigned so that each is trained exactly once.

    With `distinct`, a next item equal to the last item at or before position p is not a target.
    """
    n = len(codes)
    last_items = _last_items(codes) if distinct else None
    burn_in = max_len // 2
    start = 0
    while n >= 2:
        stop = min(start + max_len, n)
        window = codes.slice(start, stop)
        first_target = 1 if start == 0 else burn_in  # local index of the first event that is a target here
        nxt_item = window.item[1:]  # [L-1], the event after position p
        valid = (window.item_mask[1:] > 0) & (nxt_item != OOV_INDEX)
        if last_items is not None:
            valid &= nxt_item != last_items[start : stop - 1]
        valid[: max(first_target - 1, 0)] = False
        targets = np.full(len(window), -1, dtype=np.int64)
        targets[:-1] = np.where(valid, nxt_item, -1)
        if (targets >= 0).any():
            yield _Window(window, targets)
        if stop >= n:
            return
        start += max_len - burn_in


def _batches(windows: Sequence[_Window], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of window indices, windows of similar length together."""
    order = rng.permutation(len(windows))
    group = batch_size * _GROUP_BATCHES
    batches: list[list[int]] = []
    for g in range(0, len(order), group):
        chunk = sorted(order[g : g + group].tolist(), key=lambda i: len(windows[i].codes))
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


class _Objective:
    """Sampled (or full) softmax next-item loss over the masked positions of a batch."""

    def __init__(self, item_counts: np.ndarray, config: TrainConfig, generator: torch.Generator) -> None:
        self.num_candidates = item_counts.shape[0] - 1  # items 1..N-1
        self.full = self.num_candidates <= config.negatives
        self.negatives = config.negatives
        self.generator = generator
        weights = item_counts.astype(np.float64) ** config.negative_alpha
        weights[OOV_INDEX] = 0.0
        q = weights / weights.sum()
        self.probs = torch.from_numpy(q.astype(np.float32))  # [N]
        with np.errstate(divide="ignore"):
            self.log_q = torch.from_numpy(np.log(config.negatives * q).astype(np.float32))  # [N]

    @property
    def name(self) -> str:
        return "full_softmax" if self.full else "sampled_softmax"

    def __call__(self, model: ProfileEncoder, profiles: Tensor, targets: Tensor) -> Tensor:
        """profiles [M, D] (unit vectors), targets [M] item indices >= 1 -> mean cross-entropy."""
        weight = model.output_item_weight()  # [N, D]
        scale = model.log_logit_scale.exp()
        if self.full:
            logits = scale * (profiles @ weight[1:].T)  # [M, N-1]
            return F.cross_entropy(logits, targets - 1)
        negatives = torch.multinomial(self.probs, self.negatives, replacement=True, generator=self.generator)  # [K]
        pos = scale * (profiles * weight[targets]).sum(-1) - self.log_q[targets]  # [M]
        neg = scale * (profiles @ weight[negatives].T) - self.log_q[negatives]  # [M, K]
        neg = neg.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))  # accidental hits
        logits = torch.cat([pos.unsqueeze(1), neg], dim=1)  # [M, 1+K]
        return F.cross_entropy(logits, torch.zeros_like(targets))


def train(
    sequences: Sequence[Sequence[EventInput]],
    config: TrainConfig,
    encoder_config: EncoderConfig,
    progress: bool = True,
    *,
    item_ids: Mapping[int, str] | None = None,
) -> tuple[ProfileEncoder, dict[str, Any]]:
    """Fit a vocabulary and an encoder on per-user event histories; returns (eval-mode model, metrics).

    `sequences[b]` is one user's history (sorted here by time). `item_ids` (item hash -> item id) is stored in
    the vocabulary so that exported item vectors can carry ids. Metrics hold per-epoch training loss and
    validation Recall/MRR/NDCG@k, the best epoch and data counts.
    """
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.num_threads)
    # With several threads the embedding gradients are otherwise summed in a varying order: same seed, other bits.
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return _train(sequences, config, encoder_config, progress, item_ids)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def _fit_model(
    sequences: Sequence[Sequence[EventInput]],
    config: TrainConfig,
    encoder_config: EncoderConfig,
    item_ids: Mapping[int, str] | None,
    *,
    cutoff_ms: int | None = None,
) -> tuple[ProfileEncoder, list[_Window], _Objective]:
    """A fresh model whose vocabulary is fitted on `sequences`, its training windows and its objective.

    `cutoff_ms` is the validation cutoff `sequences` were cut at, if any (it only words the error)."""
    features = FeatureSpace.fit(
        sequences,
        min_item_count=config.min_item_count,
        item_ids=item_ids,
        item_categories=encoder_config.item_category_vectors,
        num_query_buckets=config.num_query_buckets,
    )
    if features.num_items < 2:
        raise TrainingError(
            "no item-bearing (browse/purchase) events to train on"
            + (" before the validation cutoff" if cutoff_ms is not None else "")
        )
    model = ProfileEncoder(encoder_config, features)
    codes = [features.sequence_codes(s) for s in sequences]
    windows = [w for c in codes for w in _windows(c, config.max_seq_len, distinct=config.distinct_targets)]
    if not windows:
        raise TrainingError("no user has an item-bearing event after another event: nothing to predict")
    item_counts = np.bincount(np.concatenate([c.item[c.item_mask > 0] for c in codes]), minlength=features.num_items)
    objective = _Objective(item_counts, config, torch.Generator().manual_seed(config.seed))
    return model, windows, objective


def _train(
    sequences: Sequence[Sequence[EventInput]],
    config: TrainConfig,
    encoder_config: EncoderConfig,
    progress: bool,
    item_ids: Mapping[int, str] | None,
) -> tuple[ProfileEncoder, dict[str, Any]]:
    started = time.monotonic()
    split = split_by_time(sequences, config.validation_fraction)
    model, windows, objective = _fit_model(split.train, config, encoder_config, item_ids, cutoff_ms=split.cutoff_ms)
    validation = split.validation_targets
    distinct_validation = config.distinct_targets or config.validate_distinct
    if distinct_validation:
        validation = _distinct_positions(split.histories, validation)
    val_targets = _cap_targets(validation, config.max_validation_targets)
    num_val = sum(len(t) for t in val_targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    k = config.eval_k
    history: dict[str, list[float]] = {"train_loss": [], f"val_recall@{k}": [], f"val_mrr@{k}": [], f"val_ndcg@{k}": []}
    best_mrr, best_epoch, best_state = -1.0, 0, None
    averaged = _WeightAverage(model)
    for epoch in range(1, config.epochs + 1):
        bar = tqdm(
            _batches(windows, config.batch_size, rng),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            disable=not progress,
        )
        history["train_loss"].append(
            _train_epoch(model, windows, bar, objective, optimizer, grad_clip_norm=config.grad_clip_norm)
        )
        _decay_lr(optimizer, config.lr_decay)
        if num_val == 0:
            best_epoch = epoch  # nothing to stop on: keep the last epoch
            if epoch > config.epochs - config.averaged_epochs:
                averaged.add(model)
            continue
        ranks = next_item_ranks(model, split.histories, val_targets, exclude_previous=distinct_validation)
        metrics = ranking_metrics(ranks, k)
        for name, value in metrics.items():
            history[f"val_{name}"].append(value)
        if metrics[f"mrr@{k}"] > best_mrr:
            best_mrr, best_epoch = metrics[f"mrr@{k}"], epoch
            best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    elif averaged.count > 1:
        averaged.load_into(model)
    refit_loss: list[float] = []
    if config.refit and split.cutoff_ms is not None:
        torch.manual_seed(config.seed)  # the refit starts from the same kind of initialisation, reproducibly
        model, windows, objective = _fit_model(split.histories, config, encoder_config, item_ids)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        for epoch in range(1, best_epoch + 1):
            batches = _batches(windows, config.batch_size, rng)
            bar = tqdm(batches, desc=f"refit {epoch}/{best_epoch}", unit="batch", disable=not progress)
            refit_loss.append(
                _train_epoch(model, windows, bar, objective, optimizer, grad_clip_norm=config.grad_clip_norm)
            )
            _decay_lr(optimizer, config.lr_decay)
    model.trained = True
    model.eval()
    result: dict[str, Any] = {
        "objective": objective.name,
        "epochs_run": len(history["train_loss"]),
        "best_epoch": best_epoch,
        "averaged_epochs": max(averaged.count, 1),
        **history,
        "refit": bool(refit_loss),
        "refit_train_loss": refit_loss,
        "num_users": len(split.histories),
        "num_items": model.features.num_items,
        "num_train_windows": len(windows),
        "num_train_targets": int(sum(int((w.targets >= 0).sum()) for w in windows)),
        "num_val_targets": num_val,
        "validation_cutoff_ms": split.cutoff_ms,
        # The returned model was fitted on the events before this time only (None: on every event given); see
        # `fitted_sequences`.
        "fitted_before_ms": None if refit_loss else split.cutoff_ms,
        "train_config": config.to_dict(),
        "train_seconds": round(time.monotonic() - started, 3),
    }
    if num_val:
        result.update({f"best_val_{m}@{k}": history[f"val_{m}@{k}"][best_epoch - 1] for m in ("recall", "mrr", "ndcg")})
    return model, result


def _train_epoch(
    model: ProfileEncoder,
    windows: Sequence[_Window],
    batches: tqdm[list[int]],
    objective: _Objective,
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip_norm: float,
) -> float:
    """One pass over `batches`; returns the mean loss per target. Leaves the model in eval mode."""
    model.train()
    total, count = 0.0, 0
    max_query_terms = model.features.max_query_terms
    for batch in batches:
        x, _ = pad_codes([windows[i].codes for i in batch], max_query_terms)  # [B, L]
        targets = _pad_targets([windows[i].targets for i in batch], x.item.shape[1])  # [B, L]
        mask = targets >= 0  # [B, L]
        out = model.run(x, dropout=True)  # [B, L, H]
        loss = objective(model, model.profile(out[mask]), targets[mask])  # profiles [M, D], targets [M]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
        optimizer.step()
        total += float(loss.detach()) * int(mask.sum())
        count += int(mask.sum())
        batches.set_postfix(loss=f"{total / count:.4f}", refresh=False)
    model.eval()
    return total / max(count, 1)


class _WeightAverage:
    """A running mean of a model's floating-point weights, taken at the ends of epochs."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.count = 0
        self._sums = {name: torch.zeros_like(t) for name, t in model.state_dict().items() if t.is_floating_point()}

    def add(self, model: torch.nn.Module) -> None:
        """Add the model's current weights to the mean."""
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name in self._sums:
                    self._sums[name] += tensor
        self.count += 1

    def load_into(self, model: torch.nn.Module) -> None:
        """Replace the model's weights by the mean (other tensors are left as they are)."""
        state = model.state_dict()
        state.update({name: total / self.count for name, total in self._sums.items()})
        model.load_state_dict(state)


def _decay_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] *= factor


def _pad_targets(targets: Sequence[np.ndarray], length: int) -> Tensor:
    out = np.full((len(targets), length), -1, dtype=np.int64)  # [B, L]
    for b, t in enumerate(targets):
        out[b, : len(t)] = t
    return torch.from_numpy(out)


def _distinct_positions(histories: Sequence[Sequence[EventInput]], targets: Sequence[Sequence[int]]) -> list[list[int]]:
    """The target positions whose item differs from the user's last item-bearing event before them."""
    out: list[list[int]] = []
    for history, positions in zip(histories, targets, strict=True):
        wanted = set(positions)
        kept, last = [], 0
        for j, event in enumerate(history):
            if j in wanted and event.item_hash != last:
                kept.append(j)
            if event.has_item:
                last = event.item_hash
        out.append(kept)
    return out


def _cap_targets(targets: Sequence[Sequence[int]], limit: int) -> list[list[int]]:
    capped: list[list[int]] = []
    left = limit
    for positions in targets:
        take = list(positions[: max(left, 0)])
        left -= len(take)
        capped.append(take)
    return capped
