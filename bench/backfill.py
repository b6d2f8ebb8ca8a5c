"""``python -m bench.backfill``: the backfill's throughput on the throughput section's data, against a local broker.

The same generated history as the suite's drain (Zipf-like users, 70/20/10 browse/search/purchase) is written as
a contract-v1 JSON-lines file; ``run_backfill`` (what ``profilestream backfill --events`` runs) folds it with
the worker's processor and writes the changelog and the profiles, with the untrained 64-dimension encoder and one
torch thread, like the suite's worker. Each run uses a fresh app id and topic prefix. The result replaces the
backfill section of bench/RESULTS.md (``python -m bench`` keeps that section when it rewrites the file, so the
section names its own commit and date).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.broker import BenchBroker
from bench.load import EventEncoder, LoadSpec, build_schedule
from bench.machine import tree_commit
from bench.procs import REPO_ROOT
from bench.stats import median
from models.threads import limit_threads
from streams.client.admin import create_topics
from streams.settings import load_settings
from streams.worker.backfill import DEFAULT_BATCH_EVENTS, BackfillReport, run_backfill
from streams.worker.encoder_runtime import EncoderRuntime

START = "<!-- backfill: written by python -m bench.backfill -->"
END = "<!-- backfill end -->"


@dataclass(frozen=True)
class BackfillRun:
    """One backfill run: its report and the CPU seconds it took (fold processes included)."""

    report: BackfillReport
    cpu_s: float


def write_history(path: Path, users: int, events: int) -> None:
    """The suite's drain schedule as a JSON-lines file."""
    encoder = EventEncoder(build_schedule(LoadSpec(users, events, mean_gap_ms=2)))
    with path.open("wb") as out:
        for _, _, value in encoder.messages():
            out.write(value + b"\n")


def _cpu_s() -> float:
    """CPU seconds of this process and of its ended children (the fold processes end with each run)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _processes(processes: int) -> str:
    if processes <= 1:
        return "process folding and writing"
    return f"process writing and {processes} processes folding"


def render(
    runs: list[BackfillRun],
    users: int,
    events: int,
    command: str,
    commit: str,
    *,
    processes: int,
    batch_events: int,
) -> str:
    """The backfill section of the results."""
    rate = median([r.report.events_per_s for r in runs])
    lines = [
        START,
        "## Backfill",
        "",
        f"`{command}`, on commit `{commit}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        "`profilestream backfill --events` over "
        f"the throughput section's history ({events:,} events, {users:,} users) written as a JSON-lines file; one "
        f"{_processes(processes)}, untrained encoder (64 dimensions), 1 torch thread each, batches of "
        f"{batch_events:,} events; each run writes "
        "every user's state record to a fresh changelog topic and profile to a fresh profile topic (acks=all) "
        "on the same local broker. Events per second over the whole run (reading the file, folding, writing).",
        "",
        "| run | events/s | fold s | total s | CPU s / 1k events | users written |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n, run in enumerate(runs, start=1):
        r = run.report
        lines.append(
            f"| {n} | {r.events_per_s:,.0f} | {r.fold_seconds:.1f} | {r.seconds:.1f} | "
            f"{run.cpu_s / r.read.events * 1000:.3f} | {r.written:,} |"
        )
    lines.append(f"| **median** | **{rate:,.0f}** | | | | |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(results: str, section: str) -> str:
    """``results`` with its backfill section replaced by ``section`` (appended when it has none)."""
    if START in results and END in results:
        head, rest = results.split(START, 1)
        _, tail = rest.split(END, 1)
        return head + section.rstrip("\n") + tail
    return results.rstrip("\n") + "\n\n" + section


def kept_section(results: str) -> str:
    """The backfill section of an existing results file, or ''."""
    if START in results and END in results:
        return START + results.split(START, 1)[1].split(END, 1)[0] + END + "\n"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the backfill benchmark and update the results file."""
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="fold processes of the backfill")
    parser.add_argument("--batch-events", type=int, default=DEFAULT_BATCH_EVENTS, help="events per fold batch")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--port", type=int, default=BenchBroker.port, help="the benchmark broker's port")
    parser.add_argument("--controller-port", type=int, default=BenchBroker.controller_port)
    parser.add_argument("--data-dir", default=BenchBroker.data_dir, help="the benchmark broker's data directory")
    args = parser.parse_args(argv)
    limit_threads(1)  # the fold processes set their own (streams.worker.backfill); this one may fold too
    workdir = REPO_ROOT / "var" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    history = workdir / "backfill-history.jsonl"
    write_history(history, args.users, args.events)
    broker = BenchBroker(port=args.port, controller_port=args.controller_port, data_dir=args.data_dir)
    bootstrap = broker.start_fresh()
    runs: list[BackfillRun] = []
    try:
        encoder = EncoderRuntime.load(None, embedding_dim=64)
        for n in range(args.runs):
            run_id = uuid.uuid4().hex[:6]
            settings = load_settings(
                kafka_bootstrap=bootstrap, topic_prefix=f"bf{run_id}.", app_id=f"bench-backfill-{run_id}"
            )
            create_topics(settings)
            cpu = _cpu_s()
            report = run_backfill(settings, history, encoder, processes=args.processes, batch_events=args.batch_events)
            runs.append(BackfillRun(report, _cpu_s() - cpu))
            print(f"backfill run {n + 1}: {report.summary()}", flush=True)
    finally:
        broker.stop_and_wipe()
    # The broker's ports and data directory change nothing measured: the report shows the sizes only.
    shown = ["--events", str(args.events), "--users", str(args.users), "--runs", str(args.runs)]
    shown += ["--processes", str(args.processes), "--batch-events", str(args.batch_events)]
    command = shlex.join(["python", "-m", "bench.backfill", *shown])
    section = render(
        runs,
        args.users,
        args.events,
        command,
        tree_commit(),
        processes=args.processes,
        batch_events=args.batch_events,
    )
    print(section)
    existing = args.results.read_text() if args.results.exists() else ""
    args.results.write_text(splice(existing, section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
