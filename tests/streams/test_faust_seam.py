"""The canary of streams/worker/faust_seam.py: every private faust-streaming name the worker relies on, checked
against the installed faust. A faust upgrade that changes one of them fails here, in one place."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiokafka
import aiokafka.consumer.fetcher
import faust
import faust.stores
import pytest
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.stores import rocksdb as faust_rocksdb
from faust.tables import recovery as faust_recovery
from faust.transport import conductor as faust_conductor
from faust.transport import consumer as faust_consumer
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
        message.acked = True  # as faust's Consumer.ack marks it
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


def test_messages_the_worker_releases_become_committable() -> None:
    assert list(inspect.signature(Message.ack).parameters) == ["self", "consumer", "n"]

    class App:
        consumer: Any = _AckRecorder()

    messages = [ConsumerMessage("t", 0, offset, 0.0, 0, None, b"k", b"v", None) for offset in (7, 8)]
    faust_seam.release(App(), messages)
    assert App.consumer.acked == [7, 8]
    faust_seam.release(App(), messages)  # a second acknowledgement changes nothing
    assert App.consumer.acked == [7, 8]


def test_messages_carry_the_generation_they_were_fetched_in() -> None:
    assert "generation_id" in inspect.signature(Message.__init__).parameters
    assert "consumer_generation_id" in faust.App("seam-generation").__dict__ or hasattr(
        faust.App, "consumer_generation_id"
    )

    class App:
        consumer_generation_id = 7

    message = ConsumerMessage("t", 0, 1, 0.0, 0, None, b"k", b"v", None, generation_id=7)
    assert faust_seam.is_current_generation(App(), message)
    App.consumer_generation_id = 8
    assert not faust_seam.is_current_generation(App(), message)


def test_the_poll_parts_the_input_consumer_takes_over_are_faust_s() -> None:
    # InputBatchConsumer.getmany replaces Consumer.getmany: the fetch loop must still pull everything through it,
    # and getmany's own steps (wait for records, skip inactive partitions, seek back when flow stopped, stamp
    # the generation) must be the ones it repeats.
    drain = inspect.getsource(Consumer._drain_messages)
    assert "getmany = self.getmany" in drain and "ait = cast(AsyncIterator, getmany(timeout=1.0))" in drain
    getmany = inspect.getsource(Consumer.getmany)
    assert "records, active_partitions = await self._wait_next_records(timeout)" in getmany
    assert "or tp in self._buffered_partitions" in getmany
    assert "await self.perform_seek()" in getmany
    assert "self.app.monitor.track_tp_end_offset(tp, highwater_mark)" in getmany
    assert "generation_id=self.app.consumer_generation_id" in inspect.getsource(faust_aiokafka.Consumer._to_message)
    assert list(inspect.signature(faust_aiokafka.Consumer._to_message).parameters) == ["self", "tp", "record"]
    assert callable(Consumer.perform_seek) and callable(Consumer.wait_first)
    assert "self.suspend_flow = Event()" in inspect.getsource(Consumer.__init__)
    # Subscribing a topic with acknowledgements on, without any stream reading it.
    assert callable(faust_conductor.Conductor.add)
    assert "self._acking_topics.add(topic)" in inspect.getsource(faust_conductor.Conductor._update_indices)
    # The message's final acknowledgement goes to the consumer's bookkeeping (what commits use).
    assert "return consumer.ack(self)" in inspect.getsource(ConsumerMessage.on_final_ack)


class _PollingConsumer(faust_seam.InputBatchConsumer):
    """An InputBatchConsumer with faust's poll replaced by canned records (no broker, no thread)."""

    flow = True

    def __init__(self, records: dict[TP, list[Any]], generation: int = 1) -> None:  # no super(): no app needed
        self._records = records
        self._buffered_partitions = set()
        self.delivered: list[list[Any]] = []
        self.app: Any = type(
            "App",
            (),
            {
                "consumer_generation_id": generation,
                "monitor": type("Monitor", (), {"track_tp_end_offset": staticmethod(lambda tp, offset: None)})(),
            },
        )()

    @property
    def should_stop(self) -> bool:
        return False

    @property
    def flow_active(self) -> bool:  # type: ignore[override]
        return self.flow

    async def _wait_next_records(self, timeout: float) -> Any:
        return self._records, set(self._records) - {TP("events.browse", 3)}

    def highwater(self, tp: TP) -> int:
        return 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        coros[1].close()  # the rebalance never comes here
        await coros[0]

    @property
    def suspend_flow(self) -> Any:  # type: ignore[override]
        return asyncio.Event()

    async def perform_seek(self) -> None:
        self.delivered.append(["seek"])


def _record(topic: str, partition: int, offset: int) -> Any:
    return type(
        "Record",
        (),
        {
            "topic": topic, "partition": partition, "offset": offset, "timestamp": 0, "timestamp_type": 0,
            "headers": [], "key": b"k", "value": b"v", "checksum": None, "serialized_key_size": 1,
            "serialized_value_size": 1,
        },
    )()  # fmt: skip


def test_the_input_consumer_delivers_a_poll_of_the_input_topics_as_one_list() -> None:
    browse, search, erasure = TP("events.browse", 0), TP("events.search", 0), TP("privacy.erasure", 0)
    paused = TP("events.browse", 3)
    records = {
        browse: [_record(*browse, 5), _record(*browse, 6)],
        search: [_record(*search, 9)],
        erasure: [_record(*erasure, 1)],
        paused: [_record(*paused, 4)],
    }
    consumer = _PollingConsumer(records)

    async def sink(messages: list[Any]) -> None:
        consumer.delivered.append(messages)

    async def poll() -> list[tuple[TP, Any]]:
        return [item async for item in consumer.getmany(1.0)]

    # Before the worker wires its sink, input records are not taken (the continuity check reads them again).
    consumer.input_topics = frozenset({"events.browse", "events.search"})
    assert [(tp, m.offset) for tp, m in asyncio.run(poll())] == [(erasure, 1)]
    assert consumer.delivered == []

    consumer.deliver_inputs = sink
    others = asyncio.run(poll())
    delivered = [(m.topic, m.offset) for m in consumer.delivered[0]]
    # The partition paused since the fetch too: its position is past these records, so faust's rule of dropping
    # them would leave them unread.
    assert delivered == [("events.browse", 5), ("events.browse", 6), ("events.search", 9), ("events.browse", 4)]
    assert all(m.generation_id == 1 for m in consumer.delivered[0])
    assert [(tp, m.offset) for tp, m in others] == [(erasure, 1)]  # faust's own path, one message at a time

    consumer.delivered.clear()
    consumer.flow = False  # a rebalance started after the fetch: nothing handed on, back to the committed offsets
    assert asyncio.run(poll()) == []
    assert consumer.delivered == [["seek"]]


def test_each_seek_back_to_the_committed_offsets_tells_the_worker_where_delivery_starts() -> None:
    # faust seeks every assigned partition back to its committed offset when a rebalance's recovery ends
    # (through perform_seek, which asks seek_to_committed): the worker learns the offsets there, not from a
    # position asked for while messages fetched meanwhile may have moved it on.
    assert "await self.seek_to_committed()" in inspect.getsource(Consumer.perform_seek)
    assert "consumer.perform_seek()" in inspect.getsource(faust_recovery.Recovery._resume_streams)
    committed = {TP("events.browse", 0): 7, TP("events.search", 0): None}

    class Thread:
        async def seek_to_committed(self) -> dict[TP, int | None]:
            return committed

    consumer = object.__new__(faust_seam.InputBatchConsumer)
    consumer._thread = Thread()  # type: ignore[assignment]
    consumer.input_topics = frozenset({"events.browse", "events.search"})
    sought: list[Mapping[TP, int]] = []

    async def seek_wait(partitions: Mapping[TP, int]) -> None:
        sought.append(partitions)

    consumer.seek_wait = seek_wait  # type: ignore[method-assign]
    told: list[object] = []
    consumer.after_seek = told.append
    assert asyncio.run(consumer.seek_to_committed()) == committed
    assert told == [committed]
    # The input partition with nothing committed is sent back to its log's start: aiokafka leaves it where its
    # fetcher got to, past whatever that fetch brought while faust's flow was stopped (and dropped).
    assert sought == [{TP("events.search", 0): 0}]
    assert "if offset and offset > 0:" in inspect.getsource(aiokafka.AIOKafkaConsumer.seek_to_committed)
    assert list(inspect.signature(faust_aiokafka.Consumer.seek_wait).parameters) == ["self", "partitions"]


def test_take_inputs_needs_the_input_batch_consumer() -> None:
    class App:
        consumer = object()

    with pytest.raises(TypeError, match="not an InputBatchConsumer"):
        faust_seam.take_inputs(App(), frozenset({"t"}), _no_sink)


async def _no_sink(messages: list[Any]) -> None:
    raise AssertionError("never called")


def test_the_consumer_has_the_flow_control_the_aligner_uses() -> None:
    for name in ("pause_partitions", "resume_partitions", "highwater", "position", "assignment"):
        assert callable(getattr(Consumer, name))
    assert "stream_wait_empty" in inspect.signature(faust.App.__init__).parameters or hasattr(
        faust.App("x").conf, "stream_wait_empty"
    )


def test_the_consumer_tells_when_a_fetch_last_answered_for_a_partition() -> None:
    # fetched_at_ms: faust's consumer thread holds the aiokafka consumer, whose fetcher stamps every partition
    # a fetch response answers for (records or not) with the wall clock, where last_poll_timestamp reads it.
    assert "self._thread = self._new_consumer_thread()" in inspect.getsource(faust_consumer.ThreadDelegateConsumer)
    assert callable(faust_aiokafka.AIOKafkaConsumerThread._ensure_consumer)
    assert "timestamp" in inspect.getsource(aiokafka.AIOKafkaConsumer.last_poll_timestamp)
    assert callable(SubscriptionState.is_assigned)
    fetcher = inspect.getsource(aiokafka.consumer.fetcher.Fetcher._proc_fetch_request)
    assert "tp_state.timestamp = now_ms" in fetcher and "now_ms = int(1000 * time.time())" in fetcher


def test_the_fetch_loop_counts_offset_jumps_as_processed_through_add_gap() -> None:
    # Why InputBatchConsumer leaves gaps to the worker: the fetch loop drops messages below its read offset, and a
    # jump in the offsets it hands over becomes a gap faust's commit passes; both read the offsets through
    # __getitem__.
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


def test_the_input_consumer_leaves_gaps_of_the_input_topics_to_the_worker() -> None:
    scheme = faust_seam.register_transport()
    assert faust.transport.by_url(f"{scheme}://localhost:9092") is faust_seam.InputBatchTransport
    assert faust_seam.InputBatchTransport.Consumer is faust_seam.InputBatchConsumer

    added: list[tuple[str, int, int]] = []

    async def record(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        added.append((tp.topic, offset_from, offset_to))

    consumer: Any = object.__new__(faust_seam.InputBatchConsumer)
    consumer.input_topics = frozenset({"events.browse"})
    original = Consumer._add_gap
    try:
        Consumer._add_gap = record  # type: ignore[method-assign]
        asyncio.run(consumer._add_gap(TP("events.browse", 0), 3, 8))
        asyncio.run(consumer._add_gap(TP("erasure", 0), 3, 8))
        asyncio.run(consumer.accept_gap(TP("events.browse", 0), 6, 7))
    finally:
        Consumer._add_gap = original  # type: ignore[method-assign]
    assert added == [("erasure", 3, 8), ("events.browse", 6, 7)]


def test_the_read_offsets_of_the_input_topics_never_gate_the_fetch_loop() -> None:
    checked = frozenset({"events.browse"})
    offsets = faust_seam._ReadOffsets(lambda: checked)
    offsets[TP("events.browse", 0)] = 41
    offsets[TP("erasure", 0)] = 7
    offsets.update({TP("events.browse", 1): 3})
    assert offsets[TP("events.browse", 0)] is None  # every message reaches the worker's continuity check
    assert offsets[TP("erasure", 0)] == 7  # other topics keep faust's own gating
    assert offsets[TP("erasure", 1)] is None  # nothing read yet, as faust's defaultdict answers
    assert offsets.pop(TP("events.browse", 1)) == 3


def test_the_consumer_commits_on_demand_and_the_broker_is_asked_what_it_holds() -> None:
    # commit_through asks faust for a commit of some partitions, then the broker (aiokafka's committed, run in the
    # consumer's thread): faust records offsets a rebalance refused as committed too.
    assert list(inspect.signature(Consumer.commit).parameters) == ["self", "topics", "start_new_transaction"]
    assert "self._committed_offset.update(committable_offsets)" in inspect.getsource(Consumer._commit_offsets)
    assert callable(faust_aiokafka.AIOKafkaConsumerThread.call_thread)
    assert callable(faust_aiokafka.AIOKafkaConsumerThread._ensure_consumer)
    assert list(inspect.signature(aiokafka.AIOKafkaConsumer.committed).parameters) == ["self", "partition"]


def test_commit_through_asks_again_until_the_broker_holds_offsets_past_what_was_processed() -> None:
    class Broker:
        """The committed offsets the broker holds; one partition's commit lands per request, as a commit
        already in flight would leave the other for later."""

        def __init__(self, lands: list[tuple[TP, int]]) -> None:
            self.offsets: dict[tuple[str, int], int] = {}
            self.lands = iter(lands)

        async def committed(self, tp: Any) -> int | None:
            return self.offsets.get((tp.topic, tp.partition))

    class Thread:
        def __init__(self, broker: Broker) -> None:
            self.broker = broker

        def _ensure_consumer(self) -> Broker:
            return self.broker

        async def call_thread(self, method: Any, *args: Any) -> Any:
            return await method(*args)

    class FakeConsumer:
        def __init__(self, broker: Broker) -> None:
            self._thread = Thread(broker)
            self.broker = broker
            self.asked: list[set[TP]] = []

        async def commit(self, topics: set[TP]) -> bool:
            self.asked.append(topics)
            landed = next(self.broker.lands, None)
            if landed is not None:
                self.broker.offsets[(landed[0].topic, landed[0].partition)] = landed[1]
            return landed is not None

    class App:
        consumer = FakeConsumer(Broker([(TP("b", 1), 8), (TP("s", 1), 4)]))

    assert asyncio.run(faust_seam.commit_through(App(), {("b", 1): 7, ("s", 1): 3}))
    assert App.consumer.asked == [{TP("b", 1), TP("s", 1)}] * 2
    # A commit the broker refused (a rebalance), whatever faust recorded: False after three asks.
    App.consumer = FakeConsumer(Broker([]))
    assert not asyncio.run(faust_seam.commit_through(App(), {("b", 1): 7, ("s", 1): 9}))
    assert len(App.consumer.asked) == 3


def test_the_app_says_when_a_rebalance_or_a_recovery_is_under_way() -> None:
    # restoring() reads two flags faust's AppT declares; rebalance and recovery set and clear them.
    assert {"rebalancing", "in_recovery"} <= set(faust.types.AppT.__annotations__)
    assert "self.app.in_recovery = True" in inspect.getsource(faust_recovery.Recovery._set_recovery_started)
    assert "self.app.in_recovery = False" in inspect.getsource(faust_recovery.Recovery._set_recovery_ended)

    class App:
        rebalancing = False
        in_recovery = False

    assert not faust_seam.restoring(App())
    App.in_recovery = True
    assert faust_seam.restoring(App())


def test_the_consumer_thread_builds_the_aiokafka_consumer_whose_fetch_wait_the_seam_replaces() -> None:
    # set_fetch_max_wait: faust's consumer creates its thread once (_new_consumer_thread), the thread creates the
    # aiokafka consumer with a fixed fetch_max_wait_ms, aiokafka keeps it as _fetch_max_wait_ms and hands it to
    # its fetcher when it starts, whose fetch requests carry it.
    assert "fetch_max_wait_ms=1500" in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert faust_seam.FAUST_FETCH_MAX_WAIT_MS == 1500
    assert "return AIOKafkaConsumerThread(self, loop=self.loop, beacon=self.beacon)" in inspect.getsource(
        faust_aiokafka.Consumer._new_consumer_thread
    )
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.__init__)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    assert "self._fetch_max_wait_ms," in inspect.getsource(aiokafka.consumer.fetcher.Fetcher._get_actions_per_node)


def test_the_fetcher_builds_its_requests_where_the_seam_chooses_their_wait() -> None:
    # wait_while_buffered: faust's consumer thread starts the aiokafka consumer in on_start, whose start() makes the
    # fetcher; the fetcher's loop asks _get_actions_per_node (looked up on the instance) for each round of
    # requests, which leaves out partitions with records in _records and carries _fetch_max_wait_ms.
    assert "await self._consumer.start()" in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread.on_start)
    assert "self._fetcher = Fetcher(" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    fetcher = aiokafka.consumer.fetcher.Fetcher
    assert "= self._get_actions_per_node(assignment)" in inspect.getsource(fetcher._fetch_requests_routine)
    assert "if tp in self._records:" in inspect.getsource(fetcher._get_actions_per_node)


def test_the_wait_follows_whether_input_records_are_buffered() -> None:
    class Fetcher:
        def __init__(self) -> None:
            self._fetch_max_wait_ms = 1_500
            self._records: dict[TP, object] = {}
            self.waits: list[int] = []

        def _get_actions_per_node(self, assignment: object) -> str:
            self.waits.append(self._fetch_max_wait_ms)
            return "requests"

    fetcher = Fetcher()
    faust_seam.wait_while_buffered(fetcher, lambda: frozenset({"events"}), 40)
    assert fetcher._get_actions_per_node(None) == "requests"
    fetcher._records[TP("erasure", 0)] = object()  # records of another topic do not count
    fetcher._get_actions_per_node(None)
    fetcher._records[TP("events", 3)] = object()
    fetcher._get_actions_per_node(None)
    fetcher._records.clear()
    fetcher._get_actions_per_node(None)
    assert fetcher.waits == [1_500, 1_500, 40, 1_500]


def test_the_fetch_wait_given_reaches_the_aiokafka_consumer_faust_builds() -> None:
    async def built_consumer(wait_ms: int | None) -> Any:
        app = faust.App("seam-fetch-wait", broker=f"{faust_seam.register_transport()}://localhost:1")
        if wait_ms is not None:
            faust_seam.set_fetch_max_wait(app, wait_ms)
        thread: Any = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        await consumer.stop()  # never started: closes what the constructor opened
        return consumer

    assert asyncio.run(built_consumer(40))._fetch_max_wait_ms == 40
    assert asyncio.run(built_consumer(None))._fetch_max_wait_ms == faust_seam.FAUST_FETCH_MAX_WAIT_MS


def test_set_fetch_max_wait_needs_the_input_batch_consumer() -> None:
    class App:
        consumer = object()

    with pytest.raises(TypeError, match="not an InputBatchConsumer"):
        faust_seam.set_fetch_max_wait(App(), 100)


def test_the_router_s_key_hashing_fails_on_what_keys_placeable_checks() -> None:
    # keys_placeable stands in front of faust's router: the names it reads must be the ones the router uses.
    import inspect

    import faust.exceptions
    from aiokafka.client import AIOKafkaClient
    from faust.assignor.partition_assignor import PartitionAssignor

    assert "self.app.producer.key_partition(topic, key)" in inspect.getsource(PartitionAssignor.key_store)
    assert "producer._partition(" in inspect.getsource(faust_aiokafka.Producer.key_partition)
    assert issubclass(faust.exceptions.NotReady, Exception)
    assert callable(AIOKafkaClient.add_topic)
