"""The profile-updated contract, version 1: what consumer services read from ``profiles.updated``.

One JSON object per message, keyed by ``user_id``. A deleted (expired or erased) user is a tombstone: a
message with the user's key and a null value. Fields may be added in later minor revisions; consumers must
ignore fields they do not know.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.contract.events import MAX_JSON_DEPTH

PROFILE_SCHEMA_VERSION = 1
# Seven decimals keep float32 precision where it matters for dot products and halve the message size.
EMBEDDING_DECIMALS = 7


class ProfileDecodeError(ValueError):
    """A message on the profile topic is not a contract-v1 profile; the consumer should skip and report it."""


COUNT_AGGREGATES = (
    *(f"{kind}_count_{window}" for window in ("1h", "24h", "7d") for kind in ("browse", "search", "purchase")),
    "purchase_count_30d",
)
"""The integer aggregates every v1 profile holds (the schema's required keys, with the spend and top lists)."""
TOP_AGGREGATES = ("top_categories", "top_search_terms")
_HASH = re.compile(r"[0-9a-f]{16}")


def zero_aggregates() -> dict[str, Any]:
    """The aggregates of a user with nothing in any window: every count 0, no spend, empty top lists."""
    return {**dict.fromkeys(COUNT_AGGREGATES, 0), "purchase_spend_30d": 0.0, **{name: [] for name in TOP_AGGREGATES}}


@dataclass(frozen=True, slots=True)
class ProfileUpdated:
    """A user's latest profile."""

    user_id: str
    version: int
    model_version: str
    embedding: list[float]
    """Rounded as published (see :func:`streams.worker.encoder_runtime.embedding_rows`)."""
    updated_at_ms: int
    last_event_ts_ms: int
    event_count: int
    aggregates: dict[str, Any] = field(default_factory=zero_aggregates)

    def to_dict(self) -> dict[str, Any]:
        """The contract-v1 JSON object."""
        return {
            "schema": PROFILE_SCHEMA_VERSION,
            "user_id": self.user_id,
            "version": self.version,
            "model_version": self.model_version,
            "embedding": self.embedding,
            "updated_at": self.updated_at_ms,
            "last_event_ts": self.last_event_ts_ms,
            "event_count": self.event_count,
            "aggregates": self.aggregates,
        }

    def to_bytes(self) -> bytes:
        """UTF-8 JSON as published (compact). orjson writes the same JSON as the standard library about ten
        times faster; with 64 floats per embedding, the standard library took a seventh of the worker's batch
        time."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes | None = None) -> ProfileUpdated:
        """Parse a published profile; raises :class:`ProfileDecodeError` when it is not one.

        Types are checked as the JSON Schema states them, never converted: a ``"version": "7"`` or an embedding
        given as a string is refused, not read as something else. With ``key`` (the message key), a profile
        whose ``user_id`` differs from it is refused too: filed under either, it would overwrite another user.
        """
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ProfileDecodeError("not a profile-updated message: not JSON") from exc
        if not isinstance(obj, dict):
            raise ProfileDecodeError("not a profile-updated message: not a JSON object")
        schema = obj.get("schema")
        if type(schema) is not int or schema != PROFILE_SCHEMA_VERSION:
            # Named by its type only (unless it is an integer): the value is untrusted and the message is logged.
            shown = schema if type(schema) is int else f"of type {type(schema).__name__}"
            raise ProfileDecodeError(f"unsupported profile schema {shown}")
        user_id = _text(obj, "user_id")
        if key is not None and user_id.encode("utf-8", errors="surrogatepass") != key:
            raise ProfileDecodeError("field 'user_id' differs from the message key")
        aggregates = _aggregates(obj.get("aggregates"))
        return cls(
            user_id=user_id,
            version=_integer(obj, "version", minimum=1),
            model_version=_text(obj, "model_version"),
            embedding=_embedding(obj.get("embedding")),
            updated_at_ms=_integer(obj, "updated_at"),
            last_event_ts_ms=_integer(obj, "last_event_ts"),
            event_count=_integer(obj, "event_count", minimum=1),
            aggregates=aggregates,
        )


FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite float32: consumers hold embeddings as float32, where a larger value becomes infinite."""


def _aggregates(value: object) -> dict[str, Any]:
    """``aggregates`` as the schema states it: the thirteen keys with their types and bounds (more keys may
    follow in later versions), nested no deeper than an event may be."""
    if not isinstance(value, dict):
        raise ProfileDecodeError("field 'aggregates' must be an object")
    for name in COUNT_AGGREGATES:
        count = value.get(name)
        if type(count) is not int or count < 0:
            raise ProfileDecodeError(f"aggregate '{name}' must be an integer of at least 0")
    if not _is_weight(value.get("purchase_spend_30d")):
        raise ProfileDecodeError("aggregate 'purchase_spend_30d' must be a finite number of at least 0")
    for name in TOP_AGGREGATES:
        top = value.get(name)
        if not isinstance(top, list) or not all(
            isinstance(entry, dict)
            and isinstance(entry.get("hash"), str)
            and _HASH.fullmatch(entry["hash"])
            and _is_weight(entry.get("weight"))
            for entry in top
        ):
            raise ProfileDecodeError(
                f"aggregate '{name}' must be a list of {{hash: 16 hex digits, weight: a number of at least 0}}"
            )
    if _deeper_than(value, MAX_JSON_DEPTH - 1):  # the profile object itself is the first level
        raise ProfileDecodeError(f"field 'aggregates' nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _is_weight(value: object) -> bool:
    # bool is an int in Python, never a number in JSON Schema.
    return type(value) in (int, float) and math.isfinite(value) and value >= 0  # type: ignore[arg-type,operator]


def _deeper_than(value: object, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels (iteratively: no recursion limit)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ProfileDecodeError(f"field '{name}' must be a non-empty string")
    return value


def _integer(obj: dict[str, Any], name: str, *, minimum: int | None = None) -> int:
    value = obj.get(name)
    # bool is an int in Python, never in JSON Schema.
    if type(value) is not int:
        raise ProfileDecodeError(f"field '{name}' must be an integer")
    if minimum is not None and value < minimum:
        raise ProfileDecodeError(f"field '{name}' must be at least {minimum}")
    return value


def _embedding(value: object) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ProfileDecodeError("field 'embedding' must be a non-empty array of numbers")
    if not all(type(x) is float or type(x) is int for x in value):
        raise ProfileDecodeError("field 'embedding' must hold numbers only")
    embedding = [float(x) for x in value]
    if not all(math.isfinite(x) and abs(x) <= FLOAT32_MAX for x in embedding):
        raise ProfileDecodeError("field 'embedding' has values that are not finite in float32")
    return embedding
