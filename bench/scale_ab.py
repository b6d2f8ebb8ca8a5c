"""One and two worker processes draining the throughput backlog, this tree beside an earlier commit, in turns.

The suite's scale-out row compares two processes with one of the same tree; whether a change moved either, only
the same drains of both trees in the same broker and hour can say (this machine's drain drifts by a quarter from
run to run). Each round runs the four drains (this tree and the baseline, one and two processes) in an order
that reverses every round, so that the machine's drift falls on both; the table gives each drain's median.

    python -m bench.scale_ab --baseline 8347a3b --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from bench.broker import BenchBroker
from bench.checkout import checkout_of, remove_checkout
from bench.load import LoadSpec
from bench.markdown import table
from bench.procs import REPO_ROOT, Variant
from bench.runs import BenchEnv, prepare_dataset, run_drain
from bench.stats import median
from bench.suite import workdir_for
from bench.suite_config import DEFAULT
from streams.settings import load_settings

DRAINS: tuple[tuple[Variant, int], ...] = (("profilestream", 2), ("baseline", 2), ("profilestream", 1), ("baseline", 1))


def measure(baseline_commit: str, rounds: int, log: Callable[[str], None]) -> dict[tuple[Variant, int], list[float]]:
    """Events per second of each (variant, processes) drain, per round, on a fresh benchmark broker."""
    workdir = workdir_for(REPO_ROOT)
    broker = BenchBroker()
    bootstrap = broker.start_fresh()
    base = load_settings(kafka_bootstrap=bootstrap, log_level="info")  # INFO: the drain clock is faust's "Ready"
    if DEFAULT.unit_events is not None:
        base = base.model_copy(update={"batch_max_events": DEFAULT.unit_events})
    baseline = checkout_of(baseline_commit, workdir)
    rates: dict[tuple[Variant, int], list[float]] = {drain: [] for drain in DRAINS}
    try:
        env = BenchEnv(bootstrap, workdir, base, log, baseline)
        dataset = prepare_dataset(env, "drain", LoadSpec(DEFAULT.drain_users, DEFAULT.drain_events, mean_gap_ms=2))
        for run in range(rounds):
            for variant, processes in DRAINS if run % 2 == 0 else tuple(reversed(DRAINS)):
                result, _ = run_drain(env, dataset, variant, run, processes=processes)
                if result is None:
                    raise RuntimeError(f"the {variant} drain with {processes} process(es) gave no result")
                rates[(variant, processes)].append(result.events_per_s)
                log(f"round {run + 1}, {variant}, {processes} process(es): {result.events_per_s:,.0f} events/s")
    finally:
        broker.stop_and_wipe()
        remove_checkout(baseline)
    return rates


def render(rates: dict[tuple[Variant, int], list[float]], baseline_commit: str) -> str:
    """The Markdown table: per tree, each drain's runs and median, and two processes over one."""
    rows = []
    trees: tuple[tuple[Variant, str], ...] = (("profilestream", "this tree"), ("baseline", f"`{baseline_commit}`"))
    for variant, name in trees:
        one, two = median(rates[(variant, 1)]), median(rates[(variant, 2)])
        runs = "; ".join(
            f"{processes}: " + ", ".join(f"{rate:,.0f}" for rate in rates[(variant, processes)]) for processes in (1, 2)
        )
        rows.append([name, runs, f"{one:,.0f}", f"{two:,.0f}", f"{two / one:.2f}x"])
    this, before = rows[0], rows[1]
    ratio = [
        "this tree ÷ baseline",
        "",
        f"{median(rates[('profilestream', 1)]) / median(rates[('baseline', 1)]):.2f}x",
        f"{median(rates[('profilestream', 2)]) / median(rates[('baseline', 2)]):.2f}x",
        "",
    ]
    header = ["tree", "runs, events/s (processes: each round)", "one process", "two processes", "two ÷ one"]
    return "\n".join(table(header, [this, before, ratio]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rounds and print the table with the command that made it."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, metavar="REV", help="the earlier commit to drain in turns")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four drains")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[scale-ab {time.monotonic() - started:5.0f} s] {message}", flush=True)

    rates = measure(args.baseline, args.rounds, log)
    command = " ".join(["python -m bench.scale_ab", *(argv if argv is not None else sys.argv[1:])])
    print(f"\n`{command}`, {time.monotonic() - started:.0f} s:\n\n{render(rates, args.baseline)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
