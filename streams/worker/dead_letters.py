"""Dead-letter records: the original message, unchanged where Kafka can carry it, with its reason in headers.

The broker refuses records over its message limit (1 MiB by default) and the producer's request limit is lower
still, so a message near the limit cannot be forwarded as it is. Such a value (or an oversized key) is cut to a
prefix and the record says so: ``ps.truncated`` names what was cut, and the original size and SHA-256 of each
cut part travel in headers, so an operator can match it with the producer's copy.
"""

from __future__ import annotations

import hashlib

from streams.worker.processor import DeadLetter

MAX_VALUE_BYTES = 256 * 1024
"""Longest value a dead letter carries unchanged: well under the broker's and producer's limits, and under the
worker's record-batch size, so a dead letter can always be written."""
MAX_KEY_BYTES = 1024
"""Longest key a dead letter carries unchanged (a valid key is a user id of at most 256 characters)."""

Headers = list[tuple[str, bytes]]


def _cut(data: bytes | None, limit: int, name: str, headers: Headers) -> tuple[bytes | None, bool]:
    if data is None or len(data) <= limit:
        return data, False
    headers.append((f"ps.original.{name}.size", str(len(data)).encode()))
    headers.append((f"ps.original.{name}.sha256", hashlib.sha256(data).hexdigest().encode()))
    return data[:limit], True


def dead_letter_record(letter: DeadLetter) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) of the dead-letter record of ``letter``."""
    msg = letter.message
    headers: Headers = [
        ("ps.stage", letter.stage.encode()),
        ("ps.reason", letter.reason.value.encode()),
        ("ps.detail", letter.detail.encode()),
        ("ps.source.topic", msg.topic.encode()),
        ("ps.source.partition", str(msg.partition).encode()),
        ("ps.source.offset", str(msg.offset).encode()),
    ]
    key, key_cut = _cut(msg.key, MAX_KEY_BYTES, "key", headers)
    value, value_cut = _cut(msg.value, MAX_VALUE_BYTES, "value", headers)
    cut = [name for name, was_cut in (("key", key_cut), ("value", value_cut)) if was_cut]
    if cut:
        headers.append(("ps.truncated", ",".join(cut).encode()))
    return key, value, headers
