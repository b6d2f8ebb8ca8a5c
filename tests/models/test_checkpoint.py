"""Checkpoints: round trip, content-hash versions, and clear errors for missing or damaged directories."""

from __future__ import annotations

import json
import os
import random
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models import checkpoint as checkpoint_module
from models.checkpoint import (
    FEATURES_FILE,
    HPARAMS_FILE,
    METADATA_FILE,
    STATE_DICT_FILE,
    check_writable,
    load_checkpoint,
    model_version,
    save_checkpoint,
    untrained_model,
)
from models.encoder import EncoderConfig, ProfileEncoder
from models.errors import CheckpointError, ModelError
from models.features import FeatureSpace
from tests.models.factories import random_history

CONFIG = EncoderConfig(embedding_dim=8, hidden_dim=12)


@pytest.fixture
def trained_model() -> ProfileEncoder:
    rnd = random.Random(1)
    torch.manual_seed(1)
    model = ProfileEncoder(CONFIG, FeatureSpace.fit([random_history(rnd, 30) for _ in range(5)]))
    model.trained = True  # stands in for a trained model; training itself is tested in test_training
    return model.eval()


@pytest.fixture
def saved(tmp_path: Path, trained_model: ProfileEncoder) -> Path:
    out = tmp_path / "ckpt"
    save_checkpoint(trained_model, out, training_fingerprint="abc", metrics={"mrr@20": 0.5, "bad": float("nan")})
    return out


def test_round_trip_gives_the_same_model_and_metadata(tmp_path: Path, trained_model: ProfileEncoder) -> None:
    out = tmp_path / "ckpt"
    version = save_checkpoint(
        trained_model, out, training_fingerprint="f" * 64, metrics={"loss": [1.0, 0.5]}, extra={"note": "x"}
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [STATE_DICT_FILE, HPARAMS_FILE, FEATURES_FILE, METADATA_FILE]
    )
    model, meta = load_checkpoint(out)
    assert version == meta.model_version == model_version(model) == model_version(trained_model)
    assert not version.startswith("untrained-") and len(version) == 16
    assert (meta.training_fingerprint, meta.metrics, meta.extra, meta.trained) == (
        "f" * 64,
        {"loss": [1.0, 0.5]},
        {"note": "x"},
        True,
    )
    assert model.config == trained_model.config and model.features == trained_model.features
    for name, tensor in trained_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    history = random_history(random.Random(2), 12)
    assert torch.equal(model.encode(history), trained_model.encode(history))
    assert not model.training


def test_saving_again_replaces_a_checkpoint_but_not_other_directories(
    saved: Path, trained_model: ProfileEncoder
) -> None:
    with torch.no_grad():
        trained_model.head.bias.add_(1.0)
    new_version = save_checkpoint(trained_model, saved, training_fingerprint="abc", metrics={})
    assert load_checkpoint(saved)[1].model_version == new_version
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers
    other = saved.parent / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        save_checkpoint(trained_model, other, training_fingerprint="abc", metrics={})
    assert (other / "todo.txt").read_text() == "keep me"


def test_check_writable_tells_before_saving_what_save_would_refuse(saved: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for fine in (saved, empty, tmp_path / "new" / "ckpt"):
        check_writable(fine)  # a checkpoint, an empty directory, a new path
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    plain = tmp_path / "file"
    plain.write_text("keep me")
    for refused in (other, plain):
        with pytest.raises(CheckpointError, match=f"refusing to overwrite {refused}"):
            check_writable(refused)


def test_non_finite_metrics_are_stored_as_null(saved: Path) -> None:
    assert load_checkpoint(saved)[1].metrics == {"mrr@20": 0.5, "bad": None}


def test_untrained_model_is_deterministic_and_labelled() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    a, b, c = untrained_model(CONFIG, seed=5), untrained_model(CONFIG, seed=5), untrained_model(CONFIG, seed=6)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), before)  # the global RNG is not disturbed
    assert model_version(a) == model_version(b) != model_version(c)
    assert model_version(a).startswith("untrained-")
    assert a.features.num_items == 1 and not a.training


def test_untrained_model_round_trips_with_its_label(tmp_path: Path) -> None:
    version = save_checkpoint(untrained_model(CONFIG, 0), tmp_path / "u", training_fingerprint="", metrics={})
    model, meta = load_checkpoint(tmp_path / "u")
    assert version.startswith("untrained-") and meta.model_version == version and not meta.trained
    assert model_version(model) == version


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist") as caught:
        load_checkpoint(tmp_path / "nope")
    assert isinstance(caught.value, ModelError)  # the worker catches the room's base class


@pytest.mark.parametrize("name", [STATE_DICT_FILE, HPARAMS_FILE, FEATURES_FILE, METADATA_FILE])
def test_missing_file(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(CheckpointError, match=f"{name} is missing"):
        load_checkpoint(saved)


@pytest.mark.parametrize("name", [HPARAMS_FILE, FEATURES_FILE, METADATA_FILE])
def test_corrupt_json(saved: Path, name: str) -> None:
    (saved / name).write_text('{"truncated": ')
    with pytest.raises(CheckpointError, match=f"{name} is not valid JSON"):
        load_checkpoint(saved)


def _edit_json(file: Path, edit: Callable[[dict[str, object]], None]) -> None:
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data))


def test_invalid_contents(saved: Path) -> None:
    _edit_json(saved / HPARAMS_FILE, lambda d: d.update(layers=3))
    with pytest.raises(CheckpointError, match="invalid contents"):
        load_checkpoint(saved)


def test_state_dict_that_does_not_match_the_config(saved: Path) -> None:
    _edit_json(saved / HPARAMS_FILE, lambda d: d.update(hidden_dim=13))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(saved)


def test_unreadable_state_dict(saved: Path) -> None:
    data = (saved / STATE_DICT_FILE).read_bytes()
    (saved / STATE_DICT_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(saved)


def test_pickled_objects_are_refused(saved: Path) -> None:
    torch.save({"gru.weight_ih_l0": _NotATensor()}, saved / STATE_DICT_FILE)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(saved)


def test_modified_weights_fail_the_content_hash(saved: Path) -> None:
    state = torch.load(saved / STATE_DICT_FILE, weights_only=True)
    state["head.bias"] = state["head.bias"] + 1e-3
    torch.save(state, saved / STATE_DICT_FILE)
    with pytest.raises(CheckpointError, match="content hash"):
        load_checkpoint(saved)


def test_modified_vocabulary_fails_the_content_hash(saved: Path) -> None:
    def swap_first_two(d: dict[str, object]) -> None:
        items = d["item_hashes"]
        assert isinstance(items, list)
        items[0], items[1] = items[1], items[0]

    _edit_json(saved / FEATURES_FILE, swap_first_two)
    with pytest.raises(CheckpointError, match="content hash"):
        load_checkpoint(saved)


class _NotATensor:
    """Any non-tensor object: weights_only loading must refuse to unpickle it."""


@pytest.mark.parametrize("unknown_then", [("item_category_vectors",), ("recency_memory", "item_category_vectors")])
def test_a_checkpoint_written_before_a_later_hyper_parameter_existed_still_loads(
    tmp_path: Path, trained_model: ProfileEncoder, unknown_then: tuple[str, ...]
) -> None:
    # What the code of that time wrote: hparams.json without the field, and a version hashed without it.
    assert all(getattr(trained_model.config, name) is False for name in unknown_then)
    out = tmp_path / "old"
    save_checkpoint(trained_model, out, training_fingerprint="abc", metrics={})
    then = {k: v for k, v in trained_model.config.to_dict().items() if k not in unknown_then}
    old_version = checkpoint_module._content_version(trained_model, then)
    assert old_version != model_version(trained_model)

    def without_them(hparams: dict[str, object]) -> None:
        for name in unknown_then:
            del hparams[name]

    _edit_json(out / HPARAMS_FILE, without_them)
    _edit_json(out / METADATA_FILE, lambda d: d.update(model_version=old_version))
    model, metadata = load_checkpoint(out)
    assert metadata.model_version == old_version  # the version its profiles and item vectors were published under
    assert model.config == trained_model.config
    # A changed weight is still refused, whichever version the files claim.
    state = torch.load(out / STATE_DICT_FILE, weights_only=True)
    state["head.bias"] = state["head.bias"] + 1e-3
    torch.save(state, out / STATE_DICT_FILE)
    with pytest.raises(CheckpointError, match="content hash"):
        load_checkpoint(out)


def test_a_checkpoint_is_readable_as_the_umask_allows(tmp_path: Path, trained_model: ProfileEncoder) -> None:
    # mkdtemp made it 0700: a worker or backfill running as another account could not load it.
    previous = os.umask(0o022)
    try:
        save_checkpoint(trained_model, tmp_path / "m", training_fingerprint="abc", metrics={})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755


def test_a_symbolic_link_as_out_is_refused_before_anything_is_written(
    tmp_path: Path, trained_model: ProfileEncoder
) -> None:
    save_checkpoint(trained_model, tmp_path / "v1", training_fingerprint="abc", metrics={})
    (tmp_path / "current").symlink_to(tmp_path / "v1")
    with pytest.raises(CheckpointError, match="symbolic link"):
        check_writable(tmp_path / "current")
    with pytest.raises(CheckpointError, match="symbolic link"):
        save_checkpoint(trained_model, tmp_path / "current", training_fingerprint="abc", metrics={})
    assert (tmp_path / "current").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"]
