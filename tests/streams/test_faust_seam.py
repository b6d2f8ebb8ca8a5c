"""The canary of streams/worker/faust_seam.py: every private faust-streaming name the worker relies on, checked
against the installed faust. A faust upgrade that changes one of them fails here, in one place."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import faust
import faust.stores
from faust.events import Event
from faust.stores import rocksdb as faust_rocksdb
from faust.streams import Stream
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ConsumerMessage, Message

from streams.worker import faust_seam
from streams.worker.store_layout import OFFSET_KEY, TABLE_NAME, table_dir


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


def test_the_producer_exposes_its_aiokafka_producer() -> None:
    assert callable(faust_aiokafka.Producer._ensure_producer)


def test_message_references_work_as_the_worker_holds_them() -> None:
    assert list(inspect.signature(Message.incref).parameters) == ["self", "n"]
    assert list(inspect.signature(Message.ack).parameters) == ["self", "consumer", "n"]
    assert callable(Event.ack)

    class Acks:
        def __init__(self) -> None:
            self.acked: list[int] = []

        def ack(self, message: Message) -> bool:
            self.acked.append(message.offset)
            return True

    consumer: Any = Acks()
    message = ConsumerMessage("t", 0, 7, 0.0, 0, None, b"k", b"v", None)
    message.incref()  # the stream's own reference
    message.incref()  # the worker's (faust_seam.hold)
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


def test_take_events_acknowledges_each_event_after_the_batch_is_handed_out() -> None:
    # The worker's extra reference exists because of this: if faust stops acknowledging here, or starts
    # acknowledging elsewhere, the hold/release discipline must be looked at again.
    source = inspect.getsource(Stream.take_events)
    assert "yield list(events)" in source
    assert "for event in events:\n                            await self.ack(event)" in source


def test_the_consumer_has_the_flow_control_the_aligner_uses() -> None:
    for name in ("pause_partitions", "resume_partitions", "highwater", "position", "assignment"):
        assert callable(getattr(Consumer, name))
    assert "stream_wait_empty" in inspect.signature(faust.App.__init__).parameters or hasattr(
        faust.App("x").conf, "stream_wait_empty"
    )
