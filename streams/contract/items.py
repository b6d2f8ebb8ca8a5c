"""The item-vectors topic contract, version 1: a model's item vectors on the compacted ``models.items`` topic.

Every model version has one manifest record and one record per item; versions coexist because every key names
its version. The format is described in docs/item-vectors.md ("On Kafka").

- Item record: key ``<model_version>\\n<item_id>``, value an :class:`ItemVector` object.
- Manifest record: key ``<model_version>``, value an :class:`ItemsManifest` object.

A model version never contains a newline (it is a hex content hash, maybe with the ``untrained-`` prefix), so a
key splits unambiguously at its first newline even when the item id holds one. Item records of one version are
spread over the partitions, so a reader holds a version as complete only once it has the manifest and
``count`` distinct items of that version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from streams.contract.profile import FLOAT32_MAX

ITEMS_FORMAT = "profilestream.item-vectors"
ITEMS_FORMAT_VERSION = 1
KEY_SEPARATOR = "\n"


class ItemsDecodeError(ValueError):
    """A record on the item-vectors topic is not a version-1 record; a reader skips it and counts it."""


@dataclass(frozen=True, slots=True)
class ItemsManifest:
    """What one model version's item records add up to."""

    model_version: str
    dim: int
    count: int
    published_at_ms: int

    def to_bytes(self) -> bytes:
        """The manifest's JSON value."""
        return orjson.dumps(
            {
                "format": ITEMS_FORMAT,
                "format_version": ITEMS_FORMAT_VERSION,
                "kind": "manifest",
                "model_version": self.model_version,
                "dim": self.dim,
                "count": self.count,
                "dtype": "float32",
                "score": "dot",
                "published_at": self.published_at_ms,
            }
        )


@dataclass(frozen=True, slots=True)
class ItemVector:
    """One item of one model version; ``rank`` is its position in the model's vocabulary (0 = most frequent)."""

    model_version: str
    item_id: str
    rank: int
    vector: list[float]

    def to_bytes(self) -> bytes:
        """The item's JSON value; a float32 value written as a double reads back as the same float32."""
        return orjson.dumps(
            {
                "format": ITEMS_FORMAT,
                "format_version": ITEMS_FORMAT_VERSION,
                "kind": "item",
                "model_version": self.model_version,
                "item_id": self.item_id,
                "rank": self.rank,
                "vector": self.vector,
            }
        )


ItemsRecord = ItemsManifest | ItemVector


def manifest_key(model_version: str) -> bytes:
    """The key of a version's manifest record."""
    _check_version(model_version)
    return model_version.encode("utf-8")


def item_key(model_version: str, item_id: str) -> bytes:
    """The key of one item record."""
    _check_version(model_version)
    return f"{model_version}{KEY_SEPARATOR}{item_id}".encode()


def split_key(key: bytes) -> tuple[str, str | None]:
    """``(model_version, item_id)`` of a key; ``item_id`` is None for a manifest key (or for a tombstone's)."""
    text = key.decode("utf-8", errors="strict")
    version, sep, item_id = text.partition(KEY_SEPARATOR)
    return version, (item_id if sep else None)


def decode_items_record(key: bytes, value: bytes) -> ItemsRecord:
    """Parse one record; raises :class:`ItemsDecodeError` naming what is wrong (never the content)."""
    try:
        version, item_id = split_key(key)
        obj = orjson.loads(value)
        if not isinstance(obj, dict):
            raise ItemsDecodeError("value is not a JSON object")
        if obj.get("format") != ITEMS_FORMAT or obj.get("format_version") != ITEMS_FORMAT_VERSION:
            raise ItemsDecodeError("unsupported format or format_version")
        if obj.get("model_version") != version:
            raise ItemsDecodeError("model_version differs from the key's")
        if item_id is None:
            return _manifest(obj, version)
        return _item(obj, version, item_id)
    except ItemsDecodeError:
        raise
    except (UnicodeDecodeError, orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ItemsDecodeError(f"not an item-vectors record: {type(exc).__name__}") from exc


def _manifest(obj: dict[str, Any], version: str) -> ItemsManifest:
    if obj.get("kind") != "manifest" or obj.get("score") != "dot" or obj.get("dtype") != "float32":
        raise ItemsDecodeError("a manifest key holds no dot-product float32 manifest")
    dim, count = obj["dim"], obj["count"]
    # A version without items could serve nothing (an index needs at least one vector).
    if type(dim) is not int or type(count) is not int or dim < 1 or count < 1:
        raise ItemsDecodeError("manifest dim and count must be positive integers")
    return ItemsManifest(version, dim, count, int(obj["published_at"]))


def _item(obj: dict[str, Any], version: str, item_id: str) -> ItemVector:
    if obj.get("kind") != "item" or obj.get("item_id") != item_id:
        raise ItemsDecodeError("an item key holds no item record of that item")
    rank = obj["rank"]
    if type(rank) is not int or rank < 0:  # bool is an int in Python, never in JSON
        raise ItemsDecodeError("item rank must be a non-negative integer")
    raw = obj["vector"]
    # A list of JSON numbers only: float() would read the string "123" as [1.0, 2.0, 3.0] and true as 1.0.
    if not isinstance(raw, list) or not all(type(x) in (int, float) for x in raw):
        raise ItemsDecodeError("item vector must be an array of numbers")
    vector = [float(x) for x in raw]
    # Within float32, as the index holds it: a larger value would become infinite there and drop every score.
    if not vector or not all(math.isfinite(x) and abs(x) <= FLOAT32_MAX for x in vector):
        raise ItemsDecodeError("item vector is empty or has values that are not finite in float32")
    return ItemVector(version, item_id, rank, vector)


def _check_version(model_version: str) -> None:
    if not model_version or KEY_SEPARATOR in model_version:
        raise ValueError("a model version is non-empty and has no newline")
