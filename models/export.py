"""Export of a checkpoint's item vectors for recommenders (docs/item-vectors.md describes the format).

One JSON-lines file: a header line naming the model version, then one line per known item with its id and its
vector. A recommender puts the vectors into an inner-product (MIPS) index and scores a user by the dot product
with the user's profile from `profiles.updated`, using only files whose `model_version` equals the profile's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from models.encoder import ProfileEncoder
from models.errors import ModelError

ITEM_VECTORS_FORMAT = "profilestream.item-vectors"
ITEM_VECTORS_FORMAT_VERSION = 1


def item_vector_header(model: ProfileEncoder, model_version: str) -> dict[str, Any]:
    """The first line of an export."""
    return {
        "format": ITEM_VECTORS_FORMAT,
        "format_version": ITEM_VECTORS_FORMAT_VERSION,
        "model_version": model_version,
        "dim": model.embedding_dim,
        "count": model.features.num_items - 1,
        "dtype": "float32",
        "score": "dot",
    }


def export_item_vectors(model: ProfileEncoder, model_version: str, out: Path) -> int:
    """Write the item vectors of `model` to `out` (JSON lines, written to a temporary file then renamed).

    Returns the number of items written. Rows follow the vocabulary order (most frequent first); the unknown
    item (index 0) is not an item and is not written. Raises `ModelError` when the vocabulary has no ids.
    """
    ids = model.features.item_ids
    if ids is None or any(not i for i in ids):
        raise ModelError("the checkpoint's vocabulary has no item ids (train it with `profilestream train`)")
    vectors = model.item_vectors()[1:].numpy().astype(np.float32)  # [N-1, D]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as file:
            file.write(json.dumps(item_vector_header(model, model_version), separators=(",", ":")) + "\n")
            for item_id, item_hash, row in zip(ids, model.features.item_hashes, vectors, strict=True):
                # str() of a float32 is the shortest text that reads back as the same float32.
                values = ",".join(str(v) for v in row)
                key = json.dumps(item_id, ensure_ascii=False)
                file.write(f'{{"item_id":{key},"item_hash":"{item_hash & 0xFFFF_FFFF_FFFF_FFFF:016x}",')
                file.write(f'"vector":[{values}]}}\n')
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(ids)
