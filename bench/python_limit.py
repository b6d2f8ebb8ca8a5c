"""Bench-only entry point: the Python limit, a bare aiokafka consume-decode-produce loop with no framework.

``python -m bench.python_limit`` reads the worker's settings from ``PROFILESTREAM_*`` like ``profilestream worker``,
consumes the three input topics as one consumer group member, decodes every event with the contract's decoder,
and produces one minimal profile per event (the counters the benchmark reads, as the framework floor publishes
them) as whole record batches (the worker's :class:`~streams.worker.bulk_producer.BulkProducer`; aiokafka's
per-record ``send`` costs more than everything else here), committing each poll's offsets once its records are
acknowledged. No Faust, no state store, no encoder,
no alignment: what one Python process reaches on this machine when it does nothing but move events through.
The counters live in memory, so this is a measurement, not a product.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.client.security import kafka_client_options
from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import PROFILES, input_topic
from streams.settings import Settings, load_settings
from streams.worker.bulk_producer import BulkProducer

POLL_TIMEOUT_MS = 100
MAX_POLL_RECORDS = 5000


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Consume, decode and produce until ``stop`` is set."""
    topics = {settings.topic(input_topic(t)): t for t in EVENT_TYPES}
    options = kafka_client_options(settings)
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.app_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=MAX_POLL_RECORDS,
        **options,
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_batch_size=512 * 1024, **options)
    bulk = BulkProducer(lambda: producer)
    profiles_topic = settings.topic(PROFILES)
    counts: dict[str, tuple[int, int]] = {}
    await consumer.start()
    await producer.start()
    await bulk.learn_partitions(profiles_topic)
    try:
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
            if not polled:
                continue
            now_ms = time.time_ns() // 1_000_000
            for tp, records in polled.items():
                topic_type = topics[tp.topic]
                for record in records:
                    event = decode_event(record.value, record.key, topic_type=topic_type, require_key=True)
                    if isinstance(event, Rejection):
                        continue
                    count, newest = counts.get(event.user_id, (0, 0))
                    count, newest = count + 1, max(newest, event.ts_ms)
                    counts[event.user_id] = (count, newest)
                    value = (
                        f'{{"user_id":{json.dumps(event.user_id)},"updated_at":{now_ms},'
                        f'"last_event_ts":{newest},"event_count":{count}}}'
                    )
                    key = event.user_id.encode()
                    bulk.stage(profiles_topic, bulk.partition_of(profiles_topic, key), key, value.encode())
            # At least once, as the worker: offsets are committed only once the poll's records are acknowledged.
            await bulk.publish()
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> int:
    """Run until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
