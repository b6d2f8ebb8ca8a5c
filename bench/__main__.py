"""``python -m bench``: run the benchmark suite against a local broker of its own and report.

``make bench`` runs the default sizes and writes bench/RESULTS.md; ``make bench-quick`` (``--quick``) runs one
small run of each section and writes var/bench/RESULTS-quick.md, leaving the committed results alone.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.backfill import kept_section
from bench.broker import BenchBroker
from bench.checkout import checkout_of, remove_checkout
from bench.machine import Machine
from bench.procs import REPO_ROOT, VARIANTS
from bench.report import render
from bench.runs import BenchEnv
from bench.suite import SECTIONS, run_suite, workdir_for
from bench.suite_config import DEFAULT, QUICK
from streams.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    """The command line of the suite."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (under 3 minutes)")
    parser.add_argument("--events", type=int, help="events in the throughput backlog")
    parser.add_argument("--users", type=int, help="users in the throughput backlog")
    parser.add_argument("--runs", type=int, help="runs per figure (the report shows medians)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, help="variants of the side-by-side")
    parser.add_argument("--results", type=Path, help="where to write the report (Markdown)")
    earlier = parser.add_mutually_exclusive_group()
    earlier.add_argument(
        "--baseline",
        metavar="REV",
        help="also drain and pace the worker of this earlier commit (side by side, as a ratio); the full suite "
        "drains the worker issue #13 started from by default",
    )
    earlier.add_argument(
        "--no-baseline", action="store_true", help="no earlier worker at all (not even the full suite's default)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; prints the report and writes it to the results file."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = (QUICK if args.quick else DEFAULT).with_sizes(events=args.events, users=args.users, runs=args.runs)
    if args.variants:
        config = config.__class__(**{**config.__dict__, "variants": tuple(args.variants)})
    sections = set(args.only or SECTIONS)
    if "freshness" in sections:
        sections.add("throughput")  # the paced loads are fractions of the measured maximum
    workdir = workdir_for(REPO_ROOT)
    results_path = args.results or (workdir / "RESULTS-quick.md" if args.quick else REPO_ROOT / "bench" / "RESULTS.md")
    command = shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.0f} s] {message}", flush=True)

    machine = Machine.describe()
    broker = BenchBroker()
    log("starting the benchmark's broker")
    bootstrap = broker.start_fresh()
    # PROFILESTREAM_* variables still apply (e.g. to measure another batch size); the report shows the command.
    # INFO: the drain clock starts at faust's "Ready" line (bench.runs.run_drain); the worker logs nothing per unit.
    base = load_settings(kafka_bootstrap=bootstrap, log_level="info")
    if config.unit_events is not None:
        base = base.model_copy(update={"batch_max_events": config.unit_events})
    baseline_commit = None if args.no_baseline else (args.baseline or config.baseline_commit)
    baseline = checkout_of(baseline_commit, workdir) if baseline_commit else None
    env = BenchEnv(bootstrap, workdir, base, log, baseline, baseline_paced=bool(args.baseline))
    try:
        results = run_suite(env, config, sections, log)
        results.baseline_commit = baseline_commit
    finally:
        broker.stop_and_wipe()
        if baseline is not None:
            remove_checkout(baseline)
    report = render(results, machine, command, settings=base)
    print()
    print(report)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    # The backfill section is written by python -m bench.backfill; a suite run keeps it.
    kept = kept_section(results_path.read_text()) if results_path.exists() else ""
    results_path.write_text(report.rstrip("\n") + "\n\n" + kept if kept else report)
    shown = results_path.relative_to(REPO_ROOT) if results_path.is_relative_to(REPO_ROOT) else results_path
    log(f"results written to {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
