"""Training: deterministic with a seed, learns a clear structure, splits by time, fails clearly without data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.encoder import EncoderConfig
from models.errors import TrainingError
from models.features import FeatureSpace, make_event_input, stable_hash64
from models.ranking import MISS, next_item_ranks, ranking_metrics
from models.training import TrainConfig, _distinct_positions, _windows, data_fingerprint, split_by_time, train
from tests.models.factories import successor_histories

SMALL = EncoderConfig(embedding_dim=16, hidden_dim=16)


def test_training_is_deterministic_for_a_seed() -> None:
    histories = successor_histories(60, 25, seed=1)
    # negatives < catalogue, so the sampled path (and its RNG) is exercised; dropout is on by default.
    config = TrainConfig(seed=3, epochs=2, batch_size=16, negatives=8, max_seq_len=8)
    torch.manual_seed(0)
    global_state = torch.get_rng_state()
    threads = torch.get_num_threads()
    first, metrics_a = train(histories, config, SMALL, progress=False)
    second, metrics_b = train(histories, config, SMALL, progress=False)
    assert torch.equal(torch.get_rng_state(), global_state)  # the caller's RNG is untouched
    assert torch.get_num_threads() == threads
    assert metrics_a["objective"] == "sampled_softmax"
    state_a, state_b = first.state_dict(), second.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert metrics_a["train_loss"] == metrics_b["train_loss"]
    other, _ = train(histories, TrainConfig(**{**config.to_dict(), "seed": 4}), SMALL, progress=False)
    assert not torch.equal(other.state_dict()["head.weight"], state_a["head.weight"])


def test_training_learns_a_clear_structure() -> None:
    num_items = 30
    histories = successor_histories(240, num_items, seed=0)
    # A constant rate: 240 short histories are 8 batches an epoch, too few for the decayed default schedule (tuned
    # on real data with hundreds of batches an epoch) to reach the structure within its first epochs.
    config = TrainConfig(
        epochs=25,
        batch_size=32,
        lr=0.01,
        lr_decay=1.0,
        negatives=10,
        patience=3,
        max_seq_len=12,
        validation_fraction=0.1,
    )
    model, metrics = train(histories, config, SMALL, progress=False)
    losses = metrics["train_loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert metrics["best_val_mrr@20"] > 0.8
    assert metrics["val_mrr@20"][0] < 0.5 * metrics["best_val_mrr@20"]
    assert model.trained and not model.training
    # The profile of a fresh user who browsed items 3, 4, 5 ranks item 6 first.
    events = [
        make_event_input("browse", 1000 * t, item_id=f"i{i}", category=f"c{i % 3}") for t, i in enumerate((3, 4, 5))
    ]
    scores = model.item_vectors() @ model.encode(events)  # [N]
    assert int(scores[1:].argmax()) + 1 == model.features.item_index(stable_hash64("i6"))


def test_full_softmax_when_the_catalogue_fits_the_negative_budget() -> None:
    histories = successor_histories(40, 6, seed=2)
    ids = {stable_hash64(f"i{i}"): f"i{i}" for i in range(6)}
    model, metrics = train(histories, TrainConfig(epochs=1, negatives=64), SMALL, progress=False, item_ids=ids)
    assert metrics["objective"] == "full_softmax"
    assert metrics["num_items"] == 7 and metrics["epochs_run"] == 1
    assert model.features.item_ids is not None
    assert [stable_hash64(i) for i in model.features.item_ids] == list(model.features.item_hashes)


def test_split_by_time_holds_out_the_latest_events() -> None:
    histories = successor_histories(50, 10, seed=4)
    split = split_by_time([list(reversed(h)) for h in histories], 0.2)  # sorted again by time
    assert split.cutoff_ms is not None
    assert all(e.ts_ms < split.cutoff_ms for part in split.train for e in part)
    assert split.histories == histories
    held_out = sum(1 for h in histories for e in h if e.ts_ms >= split.cutoff_ms)
    assert 0.15 < held_out / sum(map(len, histories)) <= 0.25
    for history, positions in zip(split.histories, split.validation_targets, strict=True):
        assert all(history[j].ts_ms >= split.cutoff_ms and history[j].has_item and j > 0 for j in positions)


def test_training_without_item_events_fails_clearly() -> None:
    searches = [[make_event_input("search", t, query="x") for t in range(5)] for _ in range(3)]
    with pytest.raises(TrainingError, match="no item-bearing") as nothing_held_out:
        train(searches, TrainConfig(epochs=1, validation_fraction=0.0), SMALL, progress=False)
    assert "validation cutoff" not in str(nothing_held_out.value)  # nothing was held out
    with pytest.raises(TrainingError, match=r"no item-bearing .* before the validation cutoff"):
        train(searches, TrainConfig(epochs=1, validation_fraction=0.2), SMALL, progress=False)
    with pytest.raises(TrainingError, match="max_seq_len"):
        TrainConfig(max_seq_len=1)


def test_data_fingerprint_changes_with_any_event() -> None:
    histories = successor_histories(5, 5, seed=0)
    changed = [list(h) for h in histories]
    changed[-1][-1] = make_event_input("browse", changed[-1][-1].ts_ms + 1, item_id="i0", category="c0")
    assert data_fingerprint(histories) == data_fingerprint([list(h) for h in histories])
    assert data_fingerprint(histories) != data_fingerprint(changed)


def test_ranking_metrics_from_known_ranks() -> None:
    metrics = ranking_metrics(np.array([1.0, 2.0, 25.0, MISS]), k=20)
    assert metrics["recall@20"] == 0.5
    assert metrics["mrr@20"] == pytest.approx((1 + 0.5) / 4)
    assert metrics["ndcg@20"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert math.isnan(ranking_metrics(np.array([]))["mrr@20"])


def test_next_item_ranks_use_only_earlier_events_and_miss_unknown_items() -> None:
    histories = successor_histories(30, 8, seed=5)
    model, _ = train(histories, TrainConfig(epochs=1, validation_fraction=0.0), SMALL, progress=False)
    history = histories[0] + [make_event_input("browse", 10**15, item_id="unknown-item")]
    targets = [len(history) - 2, len(history) - 1]
    ranks = next_item_ranks(model, [history], [targets])
    assert ranks[1] == MISS and 1 <= ranks[0] <= 8
    # The rank of position j depends only on events before j.
    profile = model.encode(history[: targets[0]])  # [D]
    scores = model.item_vectors()[1:] @ profile  # [N-1]
    target = model.features.item_index(history[targets[0]].item_hash) - 1
    assert ranks[0] == 1 + int((scores > scores[target]).sum())


def test_next_item_ranks_can_exclude_the_previous_item() -> None:
    histories = successor_histories(30, 8, seed=5)
    model, _ = train(histories, TrainConfig(epochs=1, validation_fraction=0.0), SMALL, progress=False)
    history = histories[0]
    j = len(history) - 1
    profile = model.encode(history[:j])  # [D]
    scores = model.item_vectors()[1:] @ profile  # [N-1]
    target = model.features.item_index(history[j].item_hash) - 1
    previous = model.features.item_index(history[j - 1].item_hash) - 1
    assert previous != target
    kept = next_item_ranks(model, [history], [[j]])[0]
    excluded = next_item_ranks(model, [history], [[j]], exclude_previous=True)[0]
    assert kept == 1 + int((scores > scores[target]).sum())
    assert excluded == kept - int(scores[previous] > scores[target])


def test_distinct_targets_drop_repeats_of_the_last_item() -> None:
    # a a b (search) b a: repeats are a->a (position 1) and b->b across the search (position 4).
    history = [
        make_event_input("browse", 1, item_id="a"),
        make_event_input("browse", 2, item_id="a"),
        make_event_input("browse", 3, item_id="b"),
        make_event_input("search", 4, query="shoes"),
        make_event_input("browse", 5, item_id="b"),
        make_event_input("browse", 6, item_id="a"),
    ]
    features = FeatureSpace.fit([history])
    codes = features.sequence_codes(history)
    everything = next(w.targets for w in _windows(codes, 50))
    distinct = next(w.targets for w in _windows(codes, 50, distinct=True))
    index = features.item_index
    a_, b_ = index(stable_hash64("a")), index(stable_hash64("b"))
    # targets[p] is the item of event p+1; the search (p=2 -> event 3) has no item.
    assert everything.tolist() == [a_, b_, -1, b_, a_, -1]
    assert distinct.tolist() == [-1, b_, -1, -1, a_, -1]
    split = split_by_time([history], 0.5)
    assert _distinct_positions(split.histories, split.validation_targets) == [
        [j for j in split.validation_targets[0] if j != 4]
    ]


def test_lr_decay_acts_between_epochs() -> None:
    histories = successor_histories(40, 20, seed=2)
    base = TrainConfig(seed=1, epochs=1, batch_size=16, negatives=8, max_seq_len=8, validation_fraction=0.0)
    decayed = TrainConfig(**{**base.to_dict(), "lr_decay": 0.5})
    one_a, _ = train(histories, base, SMALL, progress=False)
    one_b, _ = train(histories, decayed, SMALL, progress=False)
    assert torch.equal(one_a.state_dict()["head.weight"], one_b.state_dict()["head.weight"])  # first epoch: full lr
    two_a, _ = train(histories, TrainConfig(**{**base.to_dict(), "epochs": 2}), SMALL, progress=False)
    two_b, _ = train(histories, TrainConfig(**{**decayed.to_dict(), "epochs": 2}), SMALL, progress=False)
    assert not torch.equal(two_a.state_dict()["head.weight"], two_b.state_dict()["head.weight"])
    with pytest.raises(TrainingError, match="lr_decay"):
        TrainConfig(lr_decay=0.0)


def test_validate_distinct_early_stops_on_next_different_items_but_trains_on_all() -> None:
    histories = [
        [make_event_input("browse", 10 * t + u, item_id=f"i{(t // 2 + u) % 6}") for t in range(12)] for u in range(8)
    ]
    base = TrainConfig(epochs=1, batch_size=8, negatives=8, max_seq_len=8, validation_fraction=0.3, num_threads=1)
    _, plain = train(histories, base, SMALL, progress=False)
    _, distinct = train(histories, TrainConfig(**{**base.to_dict(), "validate_distinct": True}), SMALL, progress=False)
    split = split_by_time(histories, 0.3)
    expected = sum(map(len, _distinct_positions(split.histories, split.validation_targets)))
    assert distinct["num_val_targets"] == expected < plain["num_val_targets"]  # every item is shown twice in a row
    assert distinct["num_train_targets"] == plain["num_train_targets"]


def test_average_epochs_keeps_the_mean_of_the_last_epochs_weights() -> None:
    histories = successor_histories(40, 20, seed=2)
    base = TrainConfig(seed=1, epochs=3, batch_size=16, negatives=8, max_seq_len=8, num_threads=1, average_epochs=0)
    after_three, _ = train(histories, base, SMALL, progress=False)
    after_four, _ = train(histories, TrainConfig(**{**base.to_dict(), "epochs": 4}), SMALL, progress=False)
    averaged, metrics = train(
        histories, TrainConfig(**{**base.to_dict(), "epochs": 4, "average_epochs": 2}), SMALL, progress=False
    )
    assert metrics["averaged_epochs"] == 2
    three, four, mean = after_three.state_dict(), after_four.state_dict(), averaged.state_dict()
    assert not torch.equal(three["head.weight"], four["head.weight"])
    for name, tensor in mean.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, (three[name] + four[name]) / 2, atol=1e-6), name
    # Never the first half of the schedule: asked for 9 of 4 epochs, the mean is still of the last 2.
    capped, capped_metrics = train(
        histories, TrainConfig(**{**base.to_dict(), "epochs": 4, "average_epochs": 9}), SMALL, progress=False
    )
    assert capped_metrics["averaged_epochs"] == 2
    assert all(torch.equal(capped.state_dict()[name], t) for name, t in mean.items())
    for epochs, average, kept in ((4, 1, four), (3, 5, three)):  # one epoch's weights: the last one's
        last, last_metrics = train(
            histories,
            TrainConfig(**{**base.to_dict(), "epochs": epochs, "average_epochs": average}),
            SMALL,
            progress=False,
        )
        assert last_metrics["averaged_epochs"] == 1
        assert all(torch.equal(last.state_dict()[name], t) for name, t in kept.items())
    with pytest.raises(TrainingError, match="average_epochs"):
        TrainConfig(average_epochs=-1)
