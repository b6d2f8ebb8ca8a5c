"""A stand-in for kafka-python's producer, for tests of what the SDK and the CLI hand to Kafka without a broker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

import streams.client.producer


class _DoneFuture(Future):  # type: ignore[misc]  # kafka-python is untyped
    """A finished future with the ``get`` of kafka-python's record-metadata future."""

    def get(self, timeout: float | None = None) -> Any:
        if self.failed():
            raise self.exception
        return self.value


class RecordingKafkaProducer:
    """Records the configuration it was made with and every record sent; connects to nothing."""

    made: ClassVar[list[RecordingKafkaProducer]] = []

    failing: ClassVar[frozenset[int]] = frozenset()
    """Numbers (from 1) of the records whose delivery fails, as one not acknowledged in time does."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.flushed = False
        RecordingKafkaProducer.made.append(self)

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> _DoneFuture:
        """Record the record; its future is done already: acknowledged, or failed if its number is in ``failing``."""
        self.sent.append((topic, value, key))
        future = _DoneFuture()
        if len(self.sent) in self.failing:
            future.failure(KafkaTimeoutError("not acknowledged in time"))
        else:
            future.success(None)
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.flushed = True


def record_kafka(
    monkeypatch: pytest.MonkeyPatch, failing: set[int] | frozenset[int] = frozenset()
) -> list[RecordingKafkaProducer]:
    """Make every ``EventProducer`` send to a :class:`RecordingKafkaProducer` (whose records numbered in ``failing``
    are not delivered); returns the list of those made."""
    made: list[RecordingKafkaProducer] = []
    monkeypatch.setattr(RecordingKafkaProducer, "made", made)
    monkeypatch.setattr(RecordingKafkaProducer, "failing", frozenset(failing))
    monkeypatch.setattr(streams.client.producer, "KafkaProducer", RecordingKafkaProducer)
    return made
