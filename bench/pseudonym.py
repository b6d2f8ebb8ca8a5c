"""What pseudonymising user ids costs a producer: the SDK sending the same events with and without a key.

``python -m bench.pseudonym`` starts the benchmark broker, then sends the same browse events through
``EventProducer`` (validated, acks=all, idempotent) without and with a :class:`Pseudonymiser`, alternating, and
reports events per second of each (first send to the end of ``flush``) and their ratio, beside the CPU cost of
one pseudonym alone. The table goes to standard output with the command and the commit that made it.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

from bench.broker import BenchBroker
from bench.machine import Machine
from streams.client.admin import create_topics
from streams.client.producer import EventProducer
from streams.client.pseudonym import Pseudonymiser
from streams.contract.events import BrowseEvent
from streams.settings import load_settings

KEY = b"bench-pseudonym-key-0123456789abcdef"
T0 = 1_767_225_600_000


def _events(count: int, users: int) -> list[BrowseEvent]:
    return [
        BrowseEvent(event_id=f"e{i}", user_id=f"user-{i % users:06d}", ts_ms=T0 + i, item_id=f"item-{i % 997}")
        for i in range(count)
    ]


def _send_rate(bootstrap: str, prefix: str, events: list[BrowseEvent], pseudonymiser: Pseudonymiser | None) -> float:
    with EventProducer(bootstrap, topic_prefix=prefix, pseudonymiser=pseudonymiser) as producer:
        started = time.perf_counter()
        for event in events:
            producer.send(event)
        producer.flush()
        return len(events) / (time.perf_counter() - started)


def _pseudonym_us(count: int) -> float:
    mapper = Pseudonymiser(KEY)
    ids = [f"user-{i:06d}" for i in range(count)]
    started = time.process_time()
    for user_id in ids:
        mapper(user_id)
    return (time.process_time() - started) / count * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.pseudonym", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (the table shows medians)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "bench.pseudonym", *(argv if argv is not None else sys.argv[1:])])
    machine = Machine.describe()
    broker = BenchBroker()
    bootstrap = broker.start_fresh()
    try:
        settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=f"pseudo{uuid.uuid4().hex[:6]}.")
        create_topics(settings)
        events = _events(args.events, users=5_000)
        _send_rate(bootstrap, settings.topic_prefix, events[:2000], None)  # warm-up: connections, metadata
        plain: list[float] = []
        keyed: list[float] = []
        for _ in range(args.runs):
            plain.append(_send_rate(bootstrap, settings.topic_prefix, events, None))
            keyed.append(_send_rate(bootstrap, settings.topic_prefix, events, Pseudonymiser(KEY)))
    finally:
        broker.stop_and_wipe()
    plain_rate, keyed_rate = statistics.median(plain), statistics.median(keyed)
    print(f"`{command}` on commit `{machine.commit}`, {args.events:,} events per run, medians of {args.runs} runs")
    print()
    print("| producer | events/s | ÷ plain |")
    print("| --- | --- | --- |")
    print(f"| EventProducer | {plain_rate:,.0f} | 1.00 |")
    print(f"| EventProducer with a pseudonymiser | {keyed_rate:,.0f} | {keyed_rate / plain_rate:.2f} |")
    print()
    print(f"One pseudonym alone (HMAC-SHA256): {_pseudonym_us(100_000):.1f} µs of CPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
