"""Every use of faust-streaming's private or semi-private parts, in one module, pinned to one version.

``tests/streams/test_faust_seam.py`` asserts each name and signature used here for the installed faust, so an
upgrade fails in one place. What the worker relies on:

- the RocksDB store: a partition's database (``Store._db_for_partition``), the open ones (``Store._dbs``), the
  store registry (``faust.stores.STORES``) and the options class the tuned store subclasses
  (``faust.stores.rocksdb.RocksDBOptions``, its ``as_options``);
- faust's running aiokafka producer (``Producer._ensure_producer``), which the bulk producer sends batches on,
  and whose cluster metadata faust's table router hashes keys with (see :func:`keys_placeable`);
- message acknowledgement (``Message.ack``, ``Message.generation_id``, ``App.consumer_generation_id``) for the
  input messages the worker takes itself, and a commit on demand (``Consumer.commit``, then the broker's
  committed offsets through the consumer thread's aiokafka client) before a deletion;
- whether a rebalance or table recovery is under way (``App.rebalancing``, ``App.in_recovery``), for the lookup;
- the consumer's poll (``Consumer._wait_next_records``, ``_to_message``, ``_buffered_partitions``,
  ``suspend_flow``, ``perform_seek``, ``seek_to_committed``, ``highwater``), where :class:`InputBatchConsumer`
  tells the worker the committed offsets it seeks back to after a rebalance and hands each poll result
  of the input topics to the worker as one list instead of faust's per-message path, and the conductor's
  subscription (``App.topics.add``), which subscribes the input topics without a stream;
- the on-disk layout (offset key, table directory) that :mod:`streams.worker.store_layout` states;
- the consumer thread's creation of its aiokafka consumer (``Consumer._new_consumer_thread``,
  ``AIOKafkaConsumerThread._create_worker_consumer``, ``on_start``) and aiokafka's stored ``_fetch_max_wait_ms``,
  which faust fixes at 1,500 ms (see :func:`set_fetch_max_wait`), and its fetcher's round of requests
  (``Fetcher._get_actions_per_node``, its buffer ``_records``; see :func:`wait_while_buffered`);
- the consumer's read offsets and gap bookkeeping (``Consumer._read_offset``, ``Consumer._add_gap``, both used by
  faust's fetch loop) and its ``seek_wait``: :class:`InputBatchConsumer` leaves both, for the input topics, to
  the worker's continuity check (:mod:`streams.worker.continuity`), through a transport registered like the store.

Why not a supported route: faust-streaming has no batch delivery (``Stream.take`` and ``take_events`` build an
``Event`` per message after the conductor's per-message task), and its per-message path cost about 90 µs of the
100 µs an event that 10,000 events/s allow on our machine. The consumer's ``getmany`` is the narrowest place to
divert whole poll results while faust keeps the group, assignor, table, changelog, recovery, commits, web and
timers.

The tuned store: faust-streaming applies only a few option keys from a table's ``options=`` mapping and silently
drops the rest, compression among them. :class:`TunedStore` builds each partition database's options with
:func:`state.rocksdb_options.rocksdict_options` instead: LZ4 with ZSTD on the last level, 16 KiB blocks, 10-bit
bloom filters, and one block cache shared by all partitions of a worker, so memory is bounded per worker rather
than per partition; their memtables share one write-buffer budget the same way. The on-disk layout is faust's
own, so the offline reader and faust's recovery are unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from importlib.metadata import version
from typing import Any

import faust.exceptions
import faust.stores
import rocksdict
from faust.stores import rocksdb as faust_rocksdb
from faust.transport import drivers as faust_drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from yarl import URL

from state.rocksdb_options import RocksDBTuning, rocksdict_options

log = logging.getLogger(__name__)

FAUST_VERSION = "0.15.3"
"""The faust-streaming release every access below was checked against (pinned in pyproject.toml)."""
FAUST_FETCH_MAX_WAIT_MS = 1_500
"""The ``fetch_max_wait_ms`` faust gives its aiokafka consumer, not a setting of faust's."""
STORE_SCHEME = "profilestream-rocksdb"
TRANSPORT_SCHEME = "profilestream-kafka"
# Partitions of one worker share this many block-cache and memtable budgets of one partition, however many it
# owns.
SHARED_CACHE_PARTITIONS = 4


def faust_table_options(tuning: RocksDBTuning) -> dict[str, int]:
    """The ``options=`` mapping for faust's ``RocksDBOptions``: only the keys it applies with rocksdict.

    Returns a new dict on every call: faust's store pops keys from the mapping it is given.
    """
    options = {
        "block_cache_size": tuning.block_cache_bytes,
        "write_buffer_size": tuning.write_buffer_bytes,
        "max_write_buffer_number": tuning.max_write_buffers,
        "target_file_size_base": tuning.target_file_bytes,
        "bloom_filter_size": tuning.bloom_bits_per_key,
    }
    if tuning.max_open_files is not None:
        options["max_open_files"] = tuning.max_open_files
    return options


class _TunedOptions(faust_rocksdb.RocksDBOptions):
    """faust's options object, answering with the complete tuned rocksdict options."""

    def __init__(
        self, tuning: RocksDBTuning, cache: rocksdict.Cache, write_buffers: rocksdict.WriteBufferManager
    ) -> None:
        super().__init__(**faust_table_options(tuning), use_rocksdict=True)
        self._tuning = tuning
        self._cache = cache
        self._write_buffers = write_buffers

    def as_options(self) -> rocksdict.Options:
        return rocksdict_options(self._tuning, self._cache, self._write_buffers)


class TunedStore(faust_rocksdb.Store):
    """A faust RocksDB store (rocksdict driver) with the project's tuned options.

    The store URL's query may turn compression off (``?compression=none``, see :func:`register_store`): faust
    hands a store nothing but its URL, the app and the table.
    """

    def __init__(self, url: str | URL, *args: Any, **kwargs: Any) -> None:
        compressed = URL(str(url)).query.get("compression") != "none"
        super().__init__(url, *args, **kwargs)
        tuning = RocksDBTuning() if compressed else RocksDBTuning(compression="none", bottommost_compression="none")
        self.tuning = tuning
        cache = rocksdict.Cache(SHARED_CACHE_PARTITIONS * tuning.block_cache_bytes)
        memtables = SHARED_CACHE_PARTITIONS * tuning.write_buffer_bytes * tuning.max_write_buffers
        # allow_stall off: past the limit RocksDB flushes sooner; it never blocks the worker's writes.
        write_buffers = rocksdict.WriteBufferManager(memtables, False)
        self.rocksdb_options = _TunedOptions(tuning, cache, write_buffers)


def register_store(compression: bool = True) -> str:
    """Make the tuned store available to faust; returns the store URL to give a table or the app.

    ``compression=False`` stores records uncompressed (greppable files, for checking what the disk holds).
    """
    faust.stores.STORES.aliases[STORE_SCHEME] = f"{__name__}:TunedStore"
    return f"{STORE_SCHEME}://" if compression else f"{STORE_SCHEME}://?compression=none"


class _ReadOffsets(dict[TP, int | None]):
    """faust's per-partition read offsets, answering None (nothing read yet) for the input topics.

    faust's fetch loop drops a message below the partition's read offset as already read, and takes one more
    than one past it for a gap. After a rebalance faust seeks back to the committed offsets while its fetch
    loop is still handing over the rest of a batch fetched before: that rest moves the read offset up again, and
    the messages fetched afresh from the committed offset are then dropped until they pass it, so the worker
    sees a jump over messages it never got (measured: one or two events of a partition lost per restart, in
    about half of the kill tests). For the input topics the worker's continuity check does that job instead.
    """

    def __init__(self, inputs: Callable[[], frozenset[str]]) -> None:
        super().__init__()
        self._inputs = inputs

    def __getitem__(self, tp: TP) -> int | None:
        if tp.topic in self._inputs():
            return None
        return self.get(tp)


InputSink = Callable[[list[Any]], Awaitable[None]]
"""Takes one poll result of the input topics: faust ``ConsumerMessage`` objects, in offset order per partition."""
SeekListener = Callable[[Mapping[TP, int | None]], None]
"""Told the committed offset of every assigned partition (None: nothing committed) each time the consumer seeks
back to them."""


class InputBatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, except for the worker's input topics (:attr:`input_topics`).

    Their messages skip faust's per-message path: each poll result goes to :attr:`deliver_inputs` as one list,
    with no per-message task, lock, channel or ``Event`` (that path cost about 90 µs an event, most of the
    worker's framework floor). Nothing of faust touches those messages afterwards, so only the worker
    acknowledges them (:func:`release`), and faust's commits never pass an event the worker did not finish.
    On those topics the consumer neither drops messages below its read offset nor counts a jump in the offsets
    as processed (see :class:`_ReadOffsets`): the worker's :mod:`streams.worker.continuity` drops copies, reads
    skipped offsets again, and calls :meth:`accept_gap` only for a hole the broker confirmed. Every other topic
    (erasure requests, changelogs during recovery) keeps faust's own path.
    """

    input_topics: frozenset[str] = frozenset()
    deliver_inputs: InputSink | None = None
    after_seek: SeekListener | None = None
    fetch_max_wait_ms: int = FAUST_FETCH_MAX_WAIT_MS
    """How long the broker may hold a fetch that finds no new records (see :func:`set_fetch_max_wait`)."""
    fetch_wait_while_busy_ms: int = FAUST_FETCH_MAX_WAIT_MS
    """The same while input records wait to be taken (see :func:`wait_while_buffered`)."""

    def _new_consumer_thread(self) -> InputBatchConsumerThread:
        return InputBatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _ReadOffsets(lambda: self.input_topics)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """faust's seek of the assigned partitions back to their committed offsets (at the end of each
        rebalance's recovery, and from :meth:`getmany` while the flow is stopped), then :attr:`after_seek` told
        the offsets: where the delivery of each partition starts, known without asking for a position that
        messages fetched meanwhile may already have moved on."""
        # faust types the offsets as int; aiokafka answers None for a partition with nothing committed.
        committed: Mapping[TP, int] = await super().seek_to_committed()
        # aiokafka seeks only to a committed offset above 0: an input partition with nothing committed (or 0)
        # kept the position its fetcher had reached, and what that fetch brought while the flow was stopped,
        # which :meth:`getmany` drops, was never delivered again (measured: a second worker joining under live
        # traffic lost the first 7 to 20 events of a partition the first had not committed yet, in 2 of 5 runs).
        # Such a partition goes back to its log's start (a seek to 0 lands there when retention moved it).
        unstarted = {TP(tp.topic, tp.partition): 0 for tp, offset in committed.items() if self._unstarted(tp, offset)}
        if unstarted:
            await self.seek_wait(unstarted)
        if self.after_seek is not None:
            self.after_seek(committed)
        return committed

    def _unstarted(self, tp: Any, committed: int | None) -> bool:
        return tp.topic in self.input_topics and not committed

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """One poll: the input topics' messages go to :attr:`deliver_inputs` at once; the rest are yielded to
        faust's fetch loop one by one, as ``Consumer.getmany`` does."""
        deliver = self.deliver_inputs
        records, active = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            # A rebalance started after the fetch: what it brought may belong to another owner now. As faust
            # does, nothing of it is handed on and the partitions go back to their committed offsets.
            try:
                await self.perform_seek()
            except Exception as exc:
                log.warning("seeking back to the committed offsets failed: %r", exc)
            return
        generation = self.app.consumer_generation_id
        inputs: list[Any] = []
        others: list[tuple[TP, list[Any]]] = []
        for tp, tp_records in records.items():
            if tp.topic in self.input_topics:
                # Also those of a partition paused since the fetch (the worker's back-pressure), which faust's rule
                # below drops: the consumer's position is past them already, so dropped they were never read
                # again (a stall at a partition's end; with a transactional producer's markers, a hole the
                # continuity check then accepted). The worker checks ownership and generation itself.
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                if deliver is None:
                    # Not wired yet: nothing is taken, so the continuity check reads these offsets again.
                    continue
                to_message = self._to_message
                inputs.extend([to_message(tp, record) for record in tp_records])
                continue
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            others.append((tp, tp_records))
        if inputs and deliver is not None:
            # A rebalance (suspend_flow) or a stop ends the wait; the batch is then dropped unacknowledged.
            await self.wait_first(deliver(inputs), self.suspend_flow.wait())
        for tp, tp_records in others:
            for record in tp_records:
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    return
                yield tp, self._to_message(tp, record)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic in self.input_topics:
            return
        await super()._add_gap(tp, offset_from, offset_to)

    async def accept_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Count offsets ``offset_from`` to ``offset_to`` (both included) as processed: the broker holds no
        message there."""
        await super()._add_gap(tp, offset_from, offset_to)


class InputBatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread, whose aiokafka consumer parks a fetch at the broker for at most the consumer's
    :attr:`InputBatchConsumer.fetch_max_wait_ms` (faust fixes 1,500 ms), or
    :attr:`InputBatchConsumer.fetch_wait_while_busy_ms` while input records wait to be taken."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka's constructor stored faust's value here; its fetcher reads it when the consumer starts.
        owner: Any = self.consumer  # an InputBatchConsumer: this thread is only made by one
        consumer._fetch_max_wait_ms = owner.fetch_max_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        owner: Any = self.consumer
        started: Any = self._consumer  # set by faust's on_start above
        wait_while_buffered(started._fetcher, lambda: owner.input_topics, owner.fetch_wait_while_busy_ms)


def wait_while_buffered(fetcher: Any, topics: Callable[[], frozenset[str]], busy_ms: int) -> None:
    """Have ``fetcher`` (aiokafka's) ask the broker to hold a fetch at most ``busy_ms`` while records of
    ``topics()`` wait in its buffer, and its own wait otherwise.

    aiokafka leaves a buffered partition out of the next fetch and sends one fetch per broker at a time, so a
    fetch sent while the worker folds a unit asks only for partitions with nothing new; parked at the broker for
    the full wait, it kept the inputs' next fetch back that long after the unit ended.
    """
    idle_ms: int = fetcher._fetch_max_wait_ms
    if busy_ms >= idle_ms:
        return  # never longer than the wait it shortens; equal (the default) leaves the fetcher as it is
    build_requests = fetcher._get_actions_per_node

    def actions_per_node(assignment: Any) -> Any:
        # Checked before each round of requests: the buffer holds one entry per partition with records waiting.
        inputs = topics()
        busy = any(tp.topic in inputs for tp in fetcher._records)
        fetcher._fetch_max_wait_ms = busy_ms if busy else idle_ms
        return build_requests(assignment)

    fetcher._get_actions_per_node = actions_per_node


class InputBatchTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`InputBatchConsumer`."""

    Consumer = InputBatchConsumer


def register_transport() -> str:
    """Make the input-batching transport available to faust; returns the URL scheme for the app's broker URLs."""
    faust_drivers.TRANSPORTS.aliases[TRANSPORT_SCHEME] = f"{__name__}:InputBatchTransport"
    return TRANSPORT_SCHEME


def _input_batch_consumer(app: Any) -> InputBatchConsumer:
    consumer = app.consumer
    if not isinstance(consumer, InputBatchConsumer):
        raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not an InputBatchConsumer")
    return consumer


def take_inputs(app: Any, topics: frozenset[str], deliver: InputSink, after_seek: SeekListener | None = None) -> None:
    """Have poll results of ``topics`` delivered to ``deliver`` as lists, their offset gaps left to the worker,
    and ``after_seek`` called after each seek back to the committed offsets (the app's consumer must be an
    :class:`InputBatchConsumer`)."""
    consumer = _input_batch_consumer(app)
    consumer.input_topics = topics
    consumer.deliver_inputs = deliver
    consumer.after_seek = after_seek


def set_fetch_max_wait(app: Any, milliseconds: int, busy_milliseconds: int | None = None) -> None:
    """How long the broker may hold the consumer's fetch when it finds no new records (before the app starts),
    and while input records wait to be taken, ``busy_milliseconds`` (:func:`wait_while_buffered`; by default the
    same).

    aiokafka fetches no partition whose records the application has not taken yet, and sends one fetch per
    broker at a time. While the worker folds a large unit, every input partition has records waiting, so the
    next fetch asks only for partitions with nothing new (erasure requests, say) and the broker holds it this
    long; the input partitions cannot be fetched again until it returns. With faust's 1,500 ms that held a
    worker under live traffic idle for a second after each unit (measured at 4,500 events/s: units of about
    8,000 events every 2 s, p99 freshness 2.8 to 4.8 s). The worker keeps faust's wait while idle and sets a short
    one while records are buffered (its settings; docs/performance.md).
    """
    consumer = _input_batch_consumer(app)
    consumer.fetch_max_wait_ms = milliseconds
    consumer.fetch_wait_while_busy_ms = milliseconds if busy_milliseconds is None else busy_milliseconds


def subscribe(app: Any, topic: Any) -> None:
    """Have the consumer subscribe to ``topic`` (acknowledgements on) without any agent or stream reading it."""
    app.topics.add(topic)


def fetched_at_ms(app: Any, topic: str, partition: int) -> int | None:
    """Wall-clock ms of the last fetch response that answered for ``topic``/``partition`` (when its highwater
    mark was last updated, records or not), or None if none did since it was assigned."""
    consumer = app.consumer._thread._ensure_consumer()
    tp = TP(topic, partition)
    if not consumer._subscription.is_assigned(tp):
        return None
    timestamp: int | None = consumer.last_poll_timestamp(tp)
    return timestamp


async def accept_gap(app: Any, topic: str, partition: int, offset_from: int, offset_to: int) -> None:
    """Count a confirmed hole of an input partition as processed (see :meth:`InputBatchConsumer.accept_gap`)."""
    await app.consumer.accept_gap(TP(topic, partition), offset_from, offset_to)


async def seek(app: Any, topic: str, partition: int, offset: int) -> None:
    """Fetch ``topic``/``partition`` again from ``offset``; faust's read offset follows, so nothing from there on
    is dropped as already read.

    Through ``seek_wait``, which seeks inside the consumer's own thread: faust's plain ``seek`` calls aiokafka
    from the event loop's thread, and the fetcher, whose waiters belong to the consumer thread's loop, then
    stopped delivering anything at all (measured: a worker idle for minutes after one such seek).
    """
    await app.consumer.seek_wait({TP(topic, partition): offset})


def installed_faust_version() -> str:
    """The installed faust-streaming version (the canary test compares it with :data:`FAUST_VERSION`)."""
    return version("faust-streaming")


def partition_db(table: Any, partition: int) -> Any:
    """The RocksDB database of one table partition, as faust's store reaches it for a key of that partition
    (opening it if needed); going straight there skips faust's current-event lookup."""
    return table.data._db_for_partition(partition)


def open_partition_dbs(table: Any) -> dict[int, Any]:
    """The partition databases the table's store holds open, by partition (assigned ones, and standbys)."""
    return dict(table.data._dbs)


def kafka_producer(app: Any) -> Any:
    """faust's running ``aiokafka.AIOKafkaProducer`` (it exists once the app has started)."""
    return app.producer._ensure_producer()


def keys_placeable(app: Any, table: Any) -> bool:
    """Whether faust's table router can tell which partition a key of ``table`` belongs to now.

    The router hashes the key over the changelog topic's partitions as faust's producer's cluster metadata lists
    them, and fails with a bare ``TypeError`` while the metadata does not list them (measured: a fresh worker's
    first lookups, before faust's first topic declaration refreshes the metadata; aiokafka refreshes only the
    topics a producer tracks, and faust's producer tracks the changelog once it writes to it). When the producer
    runs but does not list the topic, this has it track the topic, so the metadata names it from the next
    refresh on (which this starts).
    """
    try:
        producer = kafka_producer(app)
    except faust.exceptions.NotReady:
        return False
    topic = table.changelog_topic.get_topic_name()
    if producer.client.cluster.partitions_for_topic(topic):
        return True
    producer.client.add_topic(topic)
    return False


def release(app: Any, messages: Iterable[Any]) -> None:
    """Acknowledge input messages: their offsets become committable (nothing else holds a reference)."""
    consumer = app.consumer
    for message in messages:
        message.ack(consumer)


async def commit_through(app: Any, processed: Mapping[tuple[str, int], int], attempts: int = 3) -> bool:
    """Commit the acknowledged input offsets now; True once the broker's committed offset of every (topic,
    partition) of ``processed`` is past the offset given for it there.

    faust's ``commit`` returns without committing when another commit is in flight (which may have taken its
    offsets before the latest acknowledgements), so it is asked again, at most ``attempts`` times. The answer is
    the broker's (aiokafka's ``committed``, a remote call), not faust's record of what it committed
    (``Consumer._committed_offset``): faust writes there the offsets a rebalance refused too.
    """
    consumer = app.consumer
    wanted = {TP(topic, partition): offset for (topic, partition), offset in processed.items()}
    for _ in range(attempts):
        await consumer.commit(set(wanted))
        if await _committed_past(consumer, wanted):
            return True
    return False


async def _committed_past(consumer: Any, wanted: Mapping[TP, int]) -> bool:
    """Whether the broker holds, for each partition of ``wanted``, a committed offset past the one given."""
    thread = consumer._thread
    client = thread._ensure_consumer()
    for tp, offset in wanted.items():
        committed = await thread.call_thread(client.committed, faust_aiokafka.ensure_aiokafka_TP(tp))
        if committed is None or committed <= offset:
            return False
    return True


def restoring(app: Any) -> bool:
    """Whether the app is between a rebalance's start and the end of its tables' recovery: a key its table does
    not hold may be one not read back from the changelog yet."""
    return bool(app.rebalancing or app.in_recovery)


def is_current_generation(app: Any, message: Any) -> bool:
    """Whether the message was fetched in the consumer group's current generation (one fetched before the last
    rebalance may still wait in the worker's inbox)."""
    return bool(message.generation_id == app.consumer_generation_id)
