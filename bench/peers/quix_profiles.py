"""(c) The profile job written the way Quix Streams' documentation teaches, as a peer to compare with.

A Quix ``Application`` with one ``StreamingDataFrame`` per input topic, concatenated (the documented way to
process several topics; co-partitioned topics share the state store of the concatenated frame), a stateful
``apply`` that is called once per message with the message key's ``State``, and ``to_topic`` to publish. State
lives in Quix's RocksDB store with its changelog topic, like profilestream's Faust table.

The work done per event is profilestream's own, so only the framework and the per-message shape differ: each
message goes through :class:`streams.worker.processor.BatchProcessor` as a batch of one (the same decoding, folding,
record codec, GRU step from ``models/`` and profile building), and its record is the user's state value. Quix's
state serialises values with ``json`` by default; the record is already bytes, so the documented
``RocksDBOptions(dumps=..., loads=...)`` hooks pass bytes through unchanged.

Run as ``python -m bench.peers.quix_profiles`` with the worker's ``PROFILESTREAM_*`` settings (bootstrap,
topic prefix, ``app_id`` as the consumer group, ``state_dir``, ``embedding_dim``, ``torch_threads``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from quixstreams import Application, State, message_context  # type: ignore[import-not-found,unused-ignore]
from quixstreams.state.rocksdb import RocksDBOptions  # type: ignore[import-not-found,unused-ignore]
from quixstreams.utils.json import dumps as json_dumps  # type: ignore[import-not-found,unused-ignore]

from models.threads import limit_threads
from streams.contract.decoder import Reason
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import PROFILES, input_topic
from streams.settings import Settings, load_settings
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchProcessor, InboundMessage

log = logging.getLogger(__name__)

RECORD_KEY = "record"
"""The state key of the user's record (Quix scopes state keys to the message key, the user id)."""


def dumps(value: Any) -> bytes:
    """State serialiser: bytes (the record) unchanged, anything else (state keys) as Quix's JSON."""
    return value if isinstance(value, bytes) else bytes(json_dumps(value))


def loads(value: bytes) -> bytes:
    """State deserialiser: every value this job stores is bytes."""
    return value


class QuixState:
    """:class:`streams.worker.processor.StateAccess` on the current message's Quix ``State``."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def load(self, user_id: str, message: InboundMessage) -> bytes | None:
        value = self.state.get(RECORD_KEY)
        return None if value is None else bytes(value)

    def store(self, user_id: str, message: InboundMessage, value: bytes) -> None:
        self.state.set(RECORD_KEY, value)


class ProfileJob:
    """The stateful ``apply`` callback: one message in, the user's new profile (or None) out."""

    def __init__(self, processor: BatchProcessor, topic_types: Mapping[str, str]) -> None:
        self.processor = processor
        self.topic_types = topic_types
        self.dead_letters = 0

    def __call__(self, value: Any, key: Any, timestamp: int, headers: Any, state: State[Any, Any]) -> Any:
        context = message_context()
        message = InboundMessage(
            topic=context.topic,
            partition=context.partition,
            offset=context.offset,
            key=key,
            value=value,
            topic_type=self.topic_types.get(context.topic, "unknown"),
        )
        output = self.processor.process([message], QuixState(state))
        if output.dead_letters:
            # The benchmark's events are all valid; count rather than publish, and let the run fail on a stall.
            self.dead_letters += len(output.dead_letters)
            log.warning("%d events rejected so far", self.dead_letters)
        return output.profiles[-1][1] if output.profiles else None


def build_app(settings: Settings) -> Application:
    """The Quix application of the profile job for ``settings``."""
    limit_threads(settings.torch_threads)  # as the faust worker does
    encoder = EncoderRuntime.load(settings.model_dir, embedding_dim=settings.embedding_dim)
    metrics = WorkerMetrics(CollectorRegistry(), reject_reasons=[reason.value for reason in Reason])
    if settings.metrics_port:
        # The same /metrics as the worker's, so the benchmark reads the encoder's time the same way.
        metrics.start_http_server(settings.metrics_bind, settings.metrics_port)
    processor = BatchProcessor(encoder, settings.state_spec(), metrics)
    app = Application(
        broker_address=settings.kafka_bootstrap,
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        state_dir=str(settings.state_dir),
        rocksdb_options=RocksDBOptions(dumps=dumps, loads=loads),
        loglevel="WARNING",
    )
    topic_types = {settings.topic(input_topic(t)): t for t in EVENT_TYPES}
    frames = [app.dataframe(app.topic(name, value_deserializer="bytes")) for name in topic_types]
    sdf = frames[0]
    for frame in frames[1:]:
        sdf = sdf.concat(frame)
    sdf = sdf.apply(ProfileJob(processor, topic_types), stateful=True, metadata=True)
    sdf = sdf.filter(lambda profile: profile is not None)
    sdf.to_topic(app.topic(settings.topic(PROFILES), value_serializer="bytes"))
    return app


def main() -> int:
    """Run the peer until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.WARNING)
    build_app(load_settings()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
