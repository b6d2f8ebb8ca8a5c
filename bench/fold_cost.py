"""The worker's own cost per event, in memory, side by side with an earlier commit.

The worker's :class:`~streams.worker.processor.BatchProcessor` folds generated events into a dict store: no
Kafka, one thread of torch and of numpy's BLAS, the worker's garbage-collector policy and record cache, the
untrained 64-dimension encoder. Three shapes of unit:

- *one*: units of one event, as a light load makes them (each unit pays the fixed cost of a unit: an encoder
  call, a record, a profile), timed over 2,000 events after the cache is warm;
- *live*: units of 250 events over 2,000 users, so nearly every user of a unit has one event (a GRU step, a
  record and a profile per event: the freshness target's case), timed after a third of the events warmed the
  cache;
- *drain*: the same population's events in units of 8,000, about four events per user per unit.

Each round runs one fresh process per tree, this one and, with ``--baseline REV``, a checkout of ``REV``, in
turns, so that the machine's drift falls on both; a tree's figure is its best round (a momentary blip is not the
tree's cost). It is the measurement for a change to the per-user update, step by step; the drain of
``python -m bench`` says what the whole worker does with it against the broker.

    python -m bench.fold_cost --baseline 3620643 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT

USERS, EVENTS_PER_USER = 2_000, 12
LIVE_UNIT, DRAIN_UNIT = 250, 8_000
ONE_EVENT_UNITS = 2_000
SHAPES = ("one", "live", "drain")

# The helpers below are defined here, not imported from elsewhere in bench/: a measuring process takes every other
# module from the tree it measures, which may be an earlier commit without them (bench.speed_probe uses them too).


class DictStore:
    """The processor's state store, a dict (no RocksDB, no changelog)."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def load(self, user_id: str, message: object) -> bytes | None:
        """The stored record of ``user_id``, or None."""
        return self.values.get(user_id)

    def store(self, user_id: str, message: object, value: bytes) -> None:
        """Store ``user_id``'s new record."""
        self.values[user_id] = value


def untrained_runtime() -> Any:
    """The untrained 64-dimension encoder as ``EncoderRuntime.load(None)`` builds it, without its warning."""
    from models.checkpoint import model_version, untrained_model
    from models.encoder import EncoderConfig
    from streams.worker.encoder_runtime import UNTRAINED_SEED, EncoderRuntime

    model = untrained_model(EncoderConfig(embedding_dim=64, hidden_dim=64), UNTRAINED_SEED)
    return EncoderRuntime(model, model_version(model))


def inbound_messages(users: int, events: int, seed: int, topic: str) -> list[Any]:
    """A generated schedule's events as the processor's ``InboundMessage``s, one partition, offsets from 0."""
    from bench.load import EventEncoder, LoadSpec, build_schedule
    from streams.worker.processor import InboundMessage

    schedule = build_schedule(LoadSpec(users, events, seed=seed, mean_gap_ms=2))
    encoded = EventEncoder(schedule).messages()
    return [InboundMessage(topic, 0, i, key, value, kind) for i, (kind, key, value) in enumerate(encoded)]


def measure() -> dict[str, float]:
    """Microseconds per event of each shape, in this process (imports torch and the worker's modules)."""
    import torch
    from prometheus_client import CollectorRegistry
    from threadpoolctl import threadpool_limits

    from state.record_cache import RecordCache
    from state.spec import StateSpec
    from streams.worker.gc_tuning import tune_garbage_collector
    from streams.worker.metrics import WorkerMetrics
    from streams.worker.processor import BatchOutput, BatchProcessor, InboundMessage

    torch.set_num_threads(1)  # as the benchmark's workers run (models.threads; earlier trees lack it)
    threadpool_limits(limits=1, user_api="blas")
    spec = StateSpec()  # one instance, as a worker holds one
    runtime = untrained_runtime()

    def messages(seed: int) -> list[InboundMessage]:
        return inbound_messages(USERS, USERS * EVENTS_PER_USER, seed, "fold-cost")

    def fold_cost(batch: list[InboundMessage], unit: int, warm: int, count: int | None = None) -> float:
        processor = BatchProcessor(
            runtime, spec, WorkerMetrics(CollectorRegistry(), process_metrics=False), cache=RecordCache(20_000)
        )
        processor.partition_for_key = lambda key: 0
        store = DictStore()

        def fold(part: list[InboundMessage]) -> float:
            started = time.perf_counter()
            for first in range(0, len(part), unit):
                output = BatchOutput()
                units = part[first : first + unit]
                processor.fold(processor.decode(units, output), store, output, consumed=len(units))
            return time.perf_counter() - started

        fold(batch[:warm])
        timed = batch[warm:] if count is None else batch[warm : warm + count]
        return fold(timed) * 1e6 / len(timed)

    live, drain = messages(7), messages(11)
    tune_garbage_collector()  # after the set-up, as the worker freezes its start-up heap
    return {
        "one": min(fold_cost(live, 1, len(live) // 3, ONE_EVENT_UNITS) for _ in range(3)),
        "live": min(fold_cost(live, LIVE_UNIT, len(live) // 3) for _ in range(3)),
        "drain": min(fold_cost(drain, DRAIN_UNIT, 0) for _ in range(3)),
    }


def _run_in(tree: Path) -> dict[str, float]:
    """One measuring process with ``tree``'s modules first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure"],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def compare(rounds: int, baseline: str | None, workdir: Path) -> str:
    """Run the rounds and render the table (Markdown)."""
    from bench.checkout import checkout_of, remove_checkout

    trees: list[tuple[str, Path]] = [("this tree", REPO_ROOT)]
    checkout = checkout_of(baseline, workdir) if baseline else None
    if checkout is not None:
        trees.append((f"`{baseline}`", checkout))
    best: dict[str, dict[str, float]] = {name: {} for name, _ in trees}
    try:
        for n in range(rounds):
            for name, tree in trees if n % 2 == 0 else list(reversed(trees)):
                figures = _run_in(tree)
                print(f"round {n + 1}, {name}: " + ", ".join(f"{s} {figures[s]:.1f} µs" for s in SHAPES), flush=True)
                for shape in SHAPES:
                    best[name][shape] = min(best[name].get(shape, float("inf")), figures[shape])
    finally:
        if checkout is not None:
            remove_checkout(checkout)
    ratios = ("", "")
    if checkout is not None:
        ratios = (" one ÷ baseline | live ÷ baseline | drain ÷ baseline |", " ---: | ---: | ---: |")
    header = "| tree | one-event units, µs per event | live, µs per event | drain, µs per event |"
    lines = [header + ratios[0], "| --- | ---: | ---: | ---: |" + ratios[1]]
    for name, _ in trees:
        row = f"| {name} | " + " | ".join(f"{best[name][s]:.1f}" for s in SHAPES) + " |"
        if checkout is not None:
            base = best[trees[1][0]]
            row += "".join(f" {best[name][s] / base[s]:.3f} |" for s in SHAPES)
        lines.append(row)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.fold_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (one process per tree each)")
    parser.add_argument("--baseline", metavar="REV", help="an earlier commit to measure in turns with this tree")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (``--measure``: one process's figures as JSON) or compare trees and print the table."""
    args = build_parser().parse_args(argv)
    if args.measure:
        print(json.dumps(measure()))
        return 0
    workdir = REPO_ROOT / "var" / "fold-cost"  # its own checkout: not the one a running `python -m bench` uses
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    table = compare(args.rounds, args.baseline, workdir)
    command = " ".join(["python -m bench.fold_cost", *(argv if argv is not None else sys.argv[1:])])
    print(f"\n`{command}`, {time.monotonic() - started:.0f} s:\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
