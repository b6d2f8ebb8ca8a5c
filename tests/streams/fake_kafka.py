"""A stand-in for kafka-python's producer, for tests of what the SDK and the CLI hand to Kafka without a broker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import streams.client.producer


class RecordingKafkaProducer:
    """Records the configuration it was made with and every record sent; connects to nothing."""

    made: ClassVar[list[RecordingKafkaProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.flushed = False
        RecordingKafkaProducer.made.append(self)

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value, key))

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.flushed = True


def record_kafka(monkeypatch: pytest.MonkeyPatch) -> list[RecordingKafkaProducer]:
    """Make every ``EventProducer`` send to a :class:`RecordingKafkaProducer`; returns the list of those made."""
    made: list[RecordingKafkaProducer] = []
    monkeypatch.setattr(RecordingKafkaProducer, "made", made)
    monkeypatch.setattr(streams.client.producer, "KafkaProducer", RecordingKafkaProducer)
    return made
