"""Every use of faust-streaming's private or semi-private parts, in one module, pinned to one version.

``tests/streams/test_faust_seam.py`` asserts each name and signature used here for the installed faust, so an
upgrade fails in one place. What the worker relies on:

- the RocksDB store: a partition's database (``Store._db_for_partition``), the open ones (``Store._dbs``), the
  store registry (``faust.stores.STORES``) and the options class the tuned store subclasses
  (``faust.stores.rocksdb.RocksDBOptions``, its ``as_options``);
- faust's running aiokafka producer (``Producer._ensure_producer``), which the bulk producer sends batches on;
- message references (``Message.incref``; ``Event.ack`` drops one) and the topic's compiled decoder
  (``Topic._compile_decode``), where :class:`HeldTopic` takes the worker's reference (see there);
- the consumer group generation a message was fetched in (``Message.generation_id``,
  ``App.consumer_generation_id``), to drop messages from before a rebalance;
- the on-disk layout (offset key, table directory) that :mod:`streams.worker.store_layout` states;
- the consumer's read offsets and gap bookkeeping (``Consumer._read_offset``, ``Consumer._add_gap``, both used by
  faust's fetch loop) and its ``seek_wait``: :class:`GapCheckedConsumer` leaves both, for the input topics, to
  the worker's continuity check (:mod:`streams.worker.continuity`), through a transport registered like the store.

The tuned store: faust-streaming applies only a few option keys from a table's ``options=`` mapping and silently
drops the rest, compression among them. :class:`TunedStore` builds each partition database's options with
:func:`state.rocksdb_options.rocksdict_options` instead: LZ4 with ZSTD on the last level, 16 KiB blocks, 10-bit
bloom filters, and one block cache shared by all partitions of a worker, so memory is bounded per worker rather
than per partition. The on-disk layout is faust's own, so the offline reader and faust's recovery are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import faust.stores
import rocksdict
from faust.stores import rocksdb as faust_rocksdb
from faust.transport import drivers as faust_drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from yarl import URL

from state.rocksdb_options import RocksDBTuning, rocksdict_options

FAUST_VERSION = "0.15.3"
"""The faust-streaming release every access below was checked against (pinned in pyproject.toml)."""
STORE_SCHEME = "profilestream-rocksdb"
TRANSPORT_SCHEME = "profilestream-kafka"
# Partitions of one worker share this many block-cache budgets of one partition.
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

    def __init__(self, tuning: RocksDBTuning, cache: rocksdict.Cache) -> None:
        super().__init__(**faust_table_options(tuning), use_rocksdict=True)
        self._tuning = tuning
        self._cache = cache

    def as_options(self) -> rocksdict.Options:
        return rocksdict_options(self._tuning, self._cache)


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
        self.rocksdb_options = _TunedOptions(tuning, cache)


def register_store(compression: bool = True) -> str:
    """Make the tuned store available to faust; returns the store URL to give a table or the app.

    ``compression=False`` stores records uncompressed (greppable files, for checking what the disk holds).
    """
    faust.stores.STORES.aliases[STORE_SCHEME] = f"{__name__}:TunedStore"
    return f"{STORE_SCHEME}://" if compression else f"{STORE_SCHEME}://?compression=none"


class _ReadOffsets(dict[TP, int | None]):
    """faust's per-partition read offsets, answering None (nothing read yet) for the checked topics.

    faust's fetch loop drops a message below the partition's read offset as already read, and takes one more
    than one past it for a gap. After a rebalance faust seeks back to the committed offsets while its fetch
    loop is still handing over the rest of a batch fetched before: that rest moves the read offset up again, and
    the messages fetched afresh from the committed offset are then dropped until they pass it, so the worker
    sees a jump over messages it never got (measured: one or two events of a partition lost per restart, in
    about half of the kill tests). For the checked topics the worker's continuity check does that job instead.
    """

    def __init__(self, checked: Callable[[], frozenset[str]]) -> None:
        super().__init__()
        self._checked = checked

    def __getitem__(self, tp: TP) -> int | None:
        if tp.topic in self._checked():
            return None
        return self.get(tp)


class GapCheckedConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, except that on the topics in :attr:`checked_topics` it neither drops messages
    below its read offset nor counts a jump in the offsets as processed (see :class:`_ReadOffsets`): every
    message reaches the worker, whose :mod:`streams.worker.continuity` drops copies, reads skipped offsets
    again, and calls :meth:`accept_gap` only for a hole the broker confirmed.
    """

    checked_topics: frozenset[str] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _ReadOffsets(lambda: self.checked_topics)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic in self.checked_topics:
            return
        await super()._add_gap(tp, offset_from, offset_to)

    async def accept_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Count offsets ``offset_from`` to ``offset_to`` (both included) as processed: the broker holds no
        message there."""
        await super()._add_gap(tp, offset_from, offset_to)


class GapCheckedTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`GapCheckedConsumer`."""

    Consumer = GapCheckedConsumer


def register_transport() -> str:
    """Make the gap-checked transport available to faust; returns the URL scheme for the app's broker URLs."""
    faust_drivers.TRANSPORTS.aliases[TRANSPORT_SCHEME] = f"{__name__}:GapCheckedTransport"
    return TRANSPORT_SCHEME


def check_gaps_of(app: Any, topics: frozenset[str]) -> None:
    """Leave offset gaps of ``topics`` to the worker (the app's consumer must be a :class:`GapCheckedConsumer`)."""
    consumer = app.consumer
    if not isinstance(consumer, GapCheckedConsumer):
        raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not a GapCheckedConsumer")
    consumer.checked_topics = topics


async def accept_gap(app: Any, topic: str, partition: int, offset_from: int, offset_to: int) -> None:
    """Count a confirmed hole of an input partition as processed (see :meth:`GapCheckedConsumer.accept_gap`)."""
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


class HeldTopic(faust.Topic):
    """A topic whose messages carry one reference of the worker's from the moment faust decodes them.

    faust acknowledges messages the worker never sees: ``Stream.take_events`` acknowledges a batch after handing
    it out; the stream skips *and acknowledges* a message fetched in an older consumer generation or arriving
    while flow control is off (a rebalance, a shutdown); and once the ``take_events()`` generator is closed (at
    shutdown) its background drainer acknowledges everything it still pulls. Any of these let faust commit an
    offset whose event was never folded. Taking the reference here, before any stream code runs, means only
    :func:`release` makes an offset committable.
    """

    def _compile_decode(self) -> None:
        # faust compiles the schema's decoder into the instance attribute ``decode`` (Topic._compile_decode);
        # the conductor calls it for every message before any stream code runs.
        super()._compile_decode()
        decode = self.decode

        async def decode_and_hold(message: Any, *, propagate: bool = False) -> Any:
            event = await decode(message, propagate=propagate)
            message.incref()
            return event

        self.decode = decode_and_hold  # type: ignore[method-assign]


def release(event: Any) -> None:
    """Drop the worker's reference: the message's offset becomes committable once faust has dropped its own."""
    event.ack()


def is_current_generation(app: Any, event: Any) -> bool:
    """Whether the event's message was fetched in the consumer group's current generation (faust stamps each
    message with the generation it was fetched in and skips stale ones in its streams, but not in a
    ``take_events()`` buffer filled before the rebalance)."""
    return bool(event.message.generation_id == app.consumer_generation_id)
