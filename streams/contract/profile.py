"""The profile-updated contract, version 1: what consumer services read from ``profiles.updated``.

One JSON object per message, keyed by ``user_id``. A deleted (expired or erased) user is a tombstone: a
message with the user's key and a null value. Fields may be added in later minor revisions; consumers must
ignore fields they do not know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

PROFILE_SCHEMA_VERSION = 1
# Seven decimals keep float32 precision where it matters for dot products and halve the message size.
EMBEDDING_DECIMALS = 7


class ProfileDecodeError(ValueError):
    """A message on the profile topic is not a contract-v1 profile; the consumer should skip and report it."""


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
    aggregates: dict[str, Any] = field(default_factory=dict)

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
    def from_bytes(cls, data: bytes) -> ProfileUpdated:
        """Parse a published profile; raises :class:`ProfileDecodeError` when it is not one."""
        try:
            obj = orjson.loads(data)
            if obj.get("schema") != PROFILE_SCHEMA_VERSION:
                raise ProfileDecodeError(f"unsupported profile schema {obj.get('schema')!r}")
            embedding = [float(x) for x in obj["embedding"]]
            if not all(math.isfinite(x) for x in embedding):
                raise ProfileDecodeError("embedding has non-finite values")
            return cls(
                user_id=str(obj["user_id"]),
                version=int(obj["version"]),
                model_version=str(obj["model_version"]),
                embedding=embedding,
                updated_at_ms=int(obj["updated_at"]),
                last_event_ts_ms=int(obj["last_event_ts"]),
                event_count=int(obj["event_count"]),
                aggregates=dict(obj.get("aggregates") or {}),
            )
        except ProfileDecodeError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProfileDecodeError(f"not a profile-updated message: {type(exc).__name__}") from exc
