"""Checkpoints: a directory of plain files, never a pickled object.

Layout of a checkpoint directory:

* `state_dict.pt`: `torch.save` of the model's state_dict only (tensors), loaded with `weights_only=True`;
* `hparams.json`: the `EncoderConfig`;
* `features.json`: the `FeatureSpace` (vocabularies and bucket layout);
* `metadata.json`: `model_version`, training data fingerprint, metrics, creation time, format version.

`model_version` is a content hash (SHA-256, 16 hex digits) of the state_dict, the config and the feature space, so
two checkpoints with the same version compute the same profiles, and loading re-computes it to detect tampering or
corruption. A model that was never trained has a version starting with `untrained-`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.encoder import EncoderConfig, ProfileEncoder
from models.errors import CheckpointError, ModelError
from models.features import FeatureSpace

CHECKPOINT_FORMAT_VERSION = 1
STATE_DICT_FILE = "state_dict.pt"
HPARAMS_FILE = "hparams.json"
FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
CHECKPOINT_FILES = (STATE_DICT_FILE, HPARAMS_FILE, FEATURES_FILE, METADATA_FILE)
UNTRAINED_PREFIX = "untrained-"


@dataclass(frozen=True)
class CheckpointMetadata:
    """Contents of `metadata.json`."""

    model_version: str
    training_fingerprint: str
    metrics: dict[str, Any]
    created_at_ms: int
    trained: bool
    format_version: int = CHECKPOINT_FORMAT_VERSION
    torch_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite metric values become null)."""
        return {
            "format_version": self.format_version,
            "model_version": self.model_version,
            "trained": self.trained,
            "training_fingerprint": self.training_fingerprint,
            "metrics": _finite(self.metrics),
            "created_at_ms": self.created_at_ms,
            "torch_version": self.torch_version,
            "extra": _finite(self.extra),
        }


LATER_CONFIG_FIELDS: tuple[tuple[str, object], ...] = (("recency_memory", False), ("item_category_vectors", False))
"""Hyper-parameters added after the first checkpoints, in the order they came, each with the value that behaves as
its absence. A checkpoint written before one existed hashed a config without it."""


def model_version(model: ProfileEncoder) -> str:
    """Content hash of the model's weights, config and feature space; `untrained-` prefixed if never trained."""
    return _content_version(model, model.config.to_dict())


def _versions_as_written(model: ProfileEncoder) -> Iterator[str]:
    """The model's version, then the versions earlier code gave the same model: without the hyper-parameters it
    did not have yet (:data:`LATER_CONFIG_FIELDS`, newest first, while each is at its absent value)."""
    config = model.config.to_dict()
    yield _content_version(model, config)
    for name, absent in reversed(LATER_CONFIG_FIELDS):
        if config.get(name) != absent:
            return
        config = {key: value for key, value in config.items() if key != name}
        yield _content_version(model, config)


def _content_version(model: ProfileEncoder, config: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(_canonical_json(config))
    digest.update(_canonical_json(model.features.to_json()))
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    version = digest.hexdigest()[:16]
    return version if model.trained else UNTRAINED_PREFIX + version


def untrained_model(config: EncoderConfig, seed: int) -> ProfileEncoder:
    """A freshly initialised model with an empty vocabulary (every item and category is unknown).

    Deterministic for a given (config, seed); the global torch RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ProfileEncoder(config, FeatureSpace())
    return model.eval()


def save_checkpoint(
    model: ProfileEncoder,
    out_dir: Path,
    *,
    training_fingerprint: str,
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """Write `model` as a checkpoint directory at `out_dir` and return its model_version.

    Files are written to a temporary sibling directory which then replaces `out_dir`, so readers never see a
    half-written checkpoint. An existing `out_dir` is replaced only if it is empty or a checkpoint.
    """
    out_dir = Path(out_dir)
    version = model_version(model)
    metadata = CheckpointMetadata(
        model_version=version,
        training_fingerprint=training_fingerprint,
        metrics=dict(metrics),
        created_at_ms=time.time_ns() // 1_000_000,
        trained=model.trained,
        torch_version=torch.__version__,
        extra=dict(extra or {}),
    )
    check_writable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        # mkdtemp makes it 0700 whatever the umask: a worker running as another account could not read the model.
        tmp.chmod(_umask_mode(0o777))
        state = {name: t.detach().cpu().clone() for name, t in model.state_dict().items()}
        torch.save(state, tmp / STATE_DICT_FILE)
        _write_json(tmp / HPARAMS_FILE, model.config.to_dict())
        _write_json(tmp / FEATURES_FILE, model.features.to_json())
        _write_json(tmp / METADATA_FILE, metadata.to_json())
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version


def _umask_mode(mode: int) -> int:
    """``mode`` as the process's umask lets new files have it (the umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mode & ~mask


def check_writable(out_dir: Path) -> None:
    """Raise `CheckpointError` if `save_checkpoint` would refuse `out_dir`: it exists and is neither an empty
    directory nor a checkpoint. Callers check it before a long training run, not only after it."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        # Replacing it would replace the link, not what it points to, and half-fail doing so.
        raise CheckpointError(
            f"refusing to write to {out_dir}: it is a symbolic link; give the directory it points to, or a new one"
        )
    if out_dir.exists() and not _replaceable(out_dir):
        raise CheckpointError(
            f"refusing to overwrite {out_dir}: it exists and is not a checkpoint directory; choose another --out"
        )


def load_checkpoint(path: Path) -> tuple[ProfileEncoder, CheckpointMetadata]:
    """Load a checkpoint directory into an eval-mode model; raises `CheckpointError` naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {path} does not exist (or is not a directory)")
    for name in CHECKPOINT_FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
    hparams = _read_json(path, HPARAMS_FILE)
    features_json = _read_json(path, FEATURES_FILE)
    meta_json = _read_json(path, METADATA_FILE)
    try:
        config = EncoderConfig.from_dict(hparams)
        features = FeatureSpace.from_json(features_json)
        metadata = _metadata_from_json(meta_json)
    except (ModelError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} has invalid contents: {exc}") from exc
    if metadata.format_version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {metadata.format_version}, this code reads "
            f"{CHECKPOINT_FORMAT_VERSION}; retrain with this version"
        )
    try:
        state = torch.load(path / STATE_DICT_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file; all mean the same to an operator
        raise CheckpointError(f"checkpoint {path}: {STATE_DICT_FILE} cannot be read ({exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: {STATE_DICT_FILE} does not hold a state_dict")
    model = ProfileEncoder(config, features)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path}: {STATE_DICT_FILE} does not match hparams.json/features.json ({exc})"
        ) from exc
    model.trained = metadata.trained
    model.eval()
    versions = list(_versions_as_written(model))
    if metadata.model_version not in versions:
        actual = versions[0]
        raise CheckpointError(
            f"checkpoint {path}: content hash {actual} differs from model_version {metadata.model_version} in "
            f"{METADATA_FILE}; the files were modified or mixed from different checkpoints"
        )
    return model, metadata


def _metadata_from_json(data: Any) -> CheckpointMetadata:
    if not isinstance(data, dict):
        raise ValueError("metadata.json must be a JSON object")
    if not isinstance(data["model_version"], str) or not isinstance(data["trained"], bool):
        raise ValueError("metadata.json: model_version must be a string and trained a boolean")
    return CheckpointMetadata(
        model_version=data["model_version"],
        training_fingerprint=str(data["training_fingerprint"]),
        metrics=dict(data["metrics"]),
        created_at_ms=int(data["created_at_ms"]),
        trained=data["trained"],
        format_version=int(data["format_version"]),
        torch_version=str(data.get("torch_version", "")),
        extra=dict(data.get("extra") or {}),
    )


def _replaceable(directory: Path) -> bool:
    if not directory.is_dir():
        return False
    entries = {p.name for p in directory.iterdir()}
    return not entries or (METADATA_FILE in entries and entries <= set(CHECKPOINT_FILES))


def _read_json(directory: Path, name: str) -> Any:
    try:
        return json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {directory}: {name} is not valid JSON ({exc})") from exc


def _write_json(file: Path, data: Any) -> None:
    file.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def _canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _finite(value: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
