"""Exceptions raised by the model room; each docstring says what an operator should do."""

from __future__ import annotations


class ModelError(Exception):
    """Base class for every error raised by `models/`. Catch this at the edge (CLI, worker start-up)."""


class FeatureError(ModelError, ValueError):
    """An event or a feature-space description is malformed.

    For an event this is a programming error upstream (the contract decoder let a bad value through); for a
    `features.json` it means the checkpoint was edited or written by an incompatible version: retrain or restore it.
    """


class CheckpointError(ModelError):
    """A checkpoint directory cannot be used (missing, incomplete, corrupt or tampered with).

    The message names the directory and the file at fault. Point the worker at a good checkpoint, or retrain with
    `profilestream train` and use the directory it writes. Never edit the files of a checkpoint by hand: its
    `model_version` is a content hash and will no longer match.
    """


class TrainingError(ModelError):
    """Training cannot start or cannot continue (for example: no item-bearing events to learn from)."""
