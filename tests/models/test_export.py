"""Item-vector export: header keyed by model version, one exact float32 vector per known item."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.encoder import EncoderConfig, ProfileEncoder
from models.errors import ModelError
from models.export import ITEM_VECTORS_FORMAT, export_item_vectors
from models.features import FeatureSpace, make_event_input, stable_hash64


def _model(item_ids: dict[int, str] | None) -> ProfileEncoder:
    events = [make_event_input("browse", t, item_id=i) for t, i in enumerate(["b", "a", "b", 'q"\nuote'])]
    torch.manual_seed(0)
    return ProfileEncoder(EncoderConfig(embedding_dim=6, hidden_dim=6), FeatureSpace.fit([events], item_ids=item_ids))


def test_export_writes_header_and_exact_vectors(tmp_path: Path) -> None:
    ids = {stable_hash64(i): i for i in ("a", "b", 'q"\nuote')}
    model = _model(ids)
    out = tmp_path / "items.jsonl"
    assert export_item_vectors(model, "v123", out) == 3
    lines = out.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == ITEM_VECTORS_FORMAT and header["model_version"] == "v123"
    assert header["dim"] == 6 and header["count"] == 3 and header["score"] == "dot"
    rows = [json.loads(line) for line in lines[1:]]
    assert [r["item_id"] for r in rows] == list(model.features.item_ids or ())  # vocabulary order
    assert rows[0]["item_id"] == "b" and {r["item_id"] for r in rows} == {"a", "b", 'q"\nuote'}
    assert rows[0]["item_hash"] == f"{stable_hash64('b') & (2**64 - 1):016x}"
    vectors = np.asarray([r["vector"] for r in rows], dtype=np.float32)
    assert np.array_equal(vectors, model.item_vectors()[1:].numpy())  # float32 values survive the text exactly
    assert not list(tmp_path.glob(".*tmp"))


def test_export_needs_item_ids(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no item ids"):
        export_item_vectors(_model(None), "v", tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()
