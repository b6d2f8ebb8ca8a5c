"""The canary of streams/worker/faust_seam.py: every private faust-streaming name the worker relies on, checked
against the installed faust. A faust upgrade that changes one of them fails here, in one place."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import faust
import faust.stores
from faust import streams as faust_streams
from faust.events import Event
from faust.stores import rocksdb as faust_rocksdb
from faust.streams import Stream
from faust.transport import conductor as faust_conductor
from faust.transport.conductor import ConductorCompiler
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage, Message

from streams.worker import faust_seam
from streams.worker.store_layout import OFFSET_KEY, TABLE_NAME, table_dir


class _AckRecorder:
    """The consumer side of ``Message.ack``: records the offsets that became committable."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: Message) -> bool:
        self.acked.append(message.offset)
        return True


def test_the_installed_faust_is_the_version_the_seam_was_checked_against() -> None:
    assert faust_seam.installed_faust_version() == faust_seam.FAUST_VERSION


def test_the_rocksdb_store_has_the_private_parts_the_worker_uses(tmp_path: Path) -> None:
    app = faust.App("seam-canary", broker="kafka://localhost:1", store="rocksdb://", datadir=str(tmp_path))
    table = app.Table(TABLE_NAME, partitions=4, key_type=bytes, value_type=bytes)
    store: Any = table.data
    assert isinstance(store, faust_rocksdb.Store)
    assert list(inspect.signature(faust_rocksdb.Store._db_for_partition).parameters) == ["self", "partition"]
    assert isinstance(store._dbs, dict)
    db = faust_seam.partition_db(table, 2)
    assert faust_seam.open_partition_dbs(table) == {2: db}
    # The on-disk layout the CLI and the benchmarks rely on (store_layout).
    assert store.offset_key == OFFSET_KEY
    assert Path(app.conf.tabledir) == table_dir(tmp_path)
    assert Path(store.partition_path(2)) == table_dir(tmp_path) / f"{TABLE_NAME}-2.db"
    db.close()


def test_the_store_registry_and_the_options_class_take_the_tuned_store() -> None:
    assert isinstance(faust.stores.STORES.aliases, dict)
    url = faust_seam.register_store()
    assert faust.stores.STORES.aliases[faust_seam.STORE_SCHEME] == "streams.worker.faust_seam:TunedStore"
    assert url == f"{faust_seam.STORE_SCHEME}://"
    assert "use_rocksdict" in inspect.signature(faust_rocksdb.RocksDBOptions.__init__).parameters
    assert callable(faust_rocksdb.RocksDBOptions.as_options)
    assert issubclass(faust_seam.TunedStore, faust_rocksdb.Store)


def test_the_store_url_carries_the_compression_to_the_tuned_store(tmp_path: Path) -> None:
    # faust hands a store only its URL, the app and the table: the query is how the setting reaches it.
    for compression, expected in ((True, ("lz4", "zstd")), (False, ("none", "none"))):
        store_url = faust_seam.register_store(compression=compression)
        app = faust.App("seam-store-url", broker="kafka://localhost:1", datadir=str(tmp_path), store=store_url)
        table = app.Table(TABLE_NAME, partitions=1, key_type=bytes, value_type=bytes)
        store: Any = table.data
        assert isinstance(store, faust_seam.TunedStore)
        assert (store.tuning.compression, store.tuning.bottommost_compression) == expected
        assert store.url.path.endswith(TABLE_NAME)


def test_the_producer_exposes_its_aiokafka_producer() -> None:
    assert callable(faust_aiokafka.Producer._ensure_producer)


def test_message_references_work_as_the_worker_holds_them() -> None:
    assert list(inspect.signature(Message.incref).parameters) == ["self", "n"]
    assert list(inspect.signature(Message.ack).parameters) == ["self", "consumer", "n"]
    assert callable(Event.ack)

    consumer: Any = _AckRecorder()
    message = ConsumerMessage("t", 0, 7, 0.0, 0, None, b"k", b"v", None)
    message.incref()  # the stream's own reference
    message.incref()  # the worker's (faust_seam.HeldTopic)
    assert not message.ack(consumer)  # take_events() acknowledges after the batch: not committable yet
    assert consumer.acked == []
    message.ack(consumer)  # faust_seam.release
    assert consumer.acked == [7]


def test_messages_carry_the_generation_they_were_fetched_in() -> None:
    assert "generation_id" in inspect.signature(Message.__init__).parameters
    assert "consumer_generation_id" in faust.App("seam-generation").__dict__ or hasattr(
        faust.App, "consumer_generation_id"
    )

    class App:
        consumer_generation_id = 7

    class Ev:
        message = ConsumerMessage("t", 0, 1, 0.0, 0, None, b"k", b"v", None, generation_id=7)

    assert faust_seam.is_current_generation(App(), Ev())
    App.consumer_generation_id = 8
    assert not faust_seam.is_current_generation(App(), Ev())


def test_faust_acknowledges_messages_the_worker_never_sees() -> None:
    # Why HeldTopic exists: take_events() acknowledges each batch after handing it out, and the stream skips and
    # acknowledges messages of an older generation or arriving while flow control is off. If faust stops
    # acknowledging there, or starts elsewhere, the reference discipline must be looked at again.
    take_events = inspect.getsource(Stream.take_events)
    assert "for event in events:\n                            await self.ack(event)" in take_events
    stream_iteration = inspect.getsource(Stream._py_aiter)
    assert "message.generation_id != self.app.consumer_generation_id" in stream_iteration
    assert "if event is not None and (do_ack or value is skipped_value):" in stream_iteration
    # The conductor decodes every message with its first channel's decode() before any stream sees it.
    assert "event = await chan.decode(message, propagate=True)" in inspect.getsource(ConductorCompiler.build)
    # faust's compiled twins of both (used when built) do the same.
    package = Path(faust.__file__).parent
    if vars(faust_streams)["_CStreamIterator"] is not None:
        assert "it.after(event, do_ack or value is skipped_value, sensor_state)" in inspect.getsource(Stream._c_aiter)
        compiled_stream = (package / "_cython" / "streams.pyx").read_text()
        assert "message.generation_id != self.app.consumer_generation_id" in compiled_stream
    if vars(faust_conductor)["ConductorHandler"] is not None:
        compiled_conductor = (package / "transport" / "_cython" / "conductor.pyx").read_text()
        assert "event = await chan.decode(message, propagate=True)" in compiled_conductor


def test_held_topic_takes_the_workers_reference_as_faust_decodes_the_message() -> None:
    app = faust.App("seam-held", broker="kafka://localhost:1")
    topic = faust_seam.HeldTopic(app, topics=["t"], key_serializer="raw", value_serializer="raw")
    assert callable(faust.Topic._compile_decode)
    # Agents iterate over clones of their topic: the clones must hold references too.
    assert isinstance(topic.clone(is_iterator=False), faust_seam.HeldTopic)

    consumer: Any = _AckRecorder()
    message = ConsumerMessage("t", 0, 7, 0.0, 0, None, b"k", b"v", None)
    message.incref()  # the conductor's reference, for the one channel
    event = asyncio.run(topic.decode(message, propagate=True))
    assert event.message is message and event.value == b"v"
    assert not message.ack(consumer)  # faust's own acknowledgement (a skipped message, a batch handed out)
    assert consumer.acked == []
    assert message.ack(consumer)  # faust_seam.release
    assert consumer.acked == [7]


def test_the_consumer_has_the_flow_control_the_aligner_uses() -> None:
    for name in ("pause_partitions", "resume_partitions", "highwater", "position", "assignment"):
        assert callable(getattr(Consumer, name))
    assert "stream_wait_empty" in inspect.signature(faust.App.__init__).parameters or hasattr(
        faust.App("x").conf, "stream_wait_empty"
    )


def test_the_fetch_loop_counts_offset_jumps_as_processed_through_add_gap() -> None:
    # Why GapCheckedConsumer exists: the fetch loop drops messages below its read offset, and a jump in the
    # offsets it hands over becomes a gap faust's commit passes; both read the offsets through __getitem__.
    drain = inspect.getsource(Consumer._drain_messages)
    assert "get_read_offset = self._read_offset.__getitem__" in drain
    assert "if r_offset is None or offset >= r_offset:" in drain
    assert "await self._add_gap(tp, r_offset + 1, offset)" in drain
    assert "self._read_offset = defaultdict(lambda: None)" in inspect.getsource(Consumer.__init__)
    assert "gap_for_tp.overlap(0, max_offset)" in inspect.getsource(Consumer._new_offset)
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer
    # The worker's seek runs in the consumer's thread and moves faust's read offset with it.
    assert list(inspect.signature(Consumer.seek_wait).parameters) == ["self", "partitions"]
    seek_wait = inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread.seek_wait)
    assert "await self.call_thread(self._seek_wait, consumer, partitions)" in seek_wait
    in_thread = inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread._seek_wait)
    assert "consumer.seek(tp, offset)" in in_thread and "self.consumer._read_offset[tp] = offset" in in_thread


def test_the_gap_checked_consumer_leaves_gaps_of_checked_topics_to_the_worker() -> None:
    scheme = faust_seam.register_transport()
    assert faust.transport.by_url(f"{scheme}://localhost:9092") is faust_seam.GapCheckedTransport
    assert faust_seam.GapCheckedTransport.Consumer is faust_seam.GapCheckedConsumer

    added: list[tuple[str, int, int]] = []

    async def record(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        added.append((tp.topic, offset_from, offset_to))

    consumer: Any = object.__new__(faust_seam.GapCheckedConsumer)
    consumer.checked_topics = frozenset({"events.browse"})
    original = Consumer._add_gap
    try:
        Consumer._add_gap = record  # type: ignore[method-assign]
        asyncio.run(consumer._add_gap(TP("events.browse", 0), 3, 8))
        asyncio.run(consumer._add_gap(TP("erasure", 0), 3, 8))
        asyncio.run(consumer.accept_gap(TP("events.browse", 0), 6, 7))
    finally:
        Consumer._add_gap = original  # type: ignore[method-assign]
    assert added == [("erasure", 3, 8), ("events.browse", 6, 7)]


def test_the_read_offsets_of_checked_topics_never_gate_the_fetch_loop() -> None:
    checked = frozenset({"events.browse"})
    offsets = faust_seam._ReadOffsets(lambda: checked)
    offsets[TP("events.browse", 0)] = 41
    offsets[TP("erasure", 0)] = 7
    offsets.update({TP("events.browse", 1): 3})
    assert offsets[TP("events.browse", 0)] is None  # every message reaches the worker's continuity check
    assert offsets[TP("erasure", 0)] == 7  # other topics keep faust's own gating
    assert offsets[TP("erasure", 1)] is None  # nothing read yet, as faust's defaultdict answers
    assert offsets.pop(TP("events.browse", 1)) == 3
