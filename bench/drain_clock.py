"""``python -m bench.drain_clock --baseline REV``: how much a drain clock that starts at the first profile
favours a worker that decodes its whole backlog before its first profile.

The suite timed drains from the first profile to the last until it moved to faust's "Ready" line (written as the
worker starts fetching; :func:`bench.runs.run_drain`). The batch-delivery worker receives a backlog of a few MiB in
its first poll and decodes all of it before its first unit, outside the first-profile clock; a worker that decodes
message by message (an earlier commit, Quix Streams) does so inside it. This tool drains the same backlog with this
tree's worker and the worker of ``REV``, alternating, both logging at INFO, and reports each drain by both clocks:
from the first profile and from "Ready" (every event counted). Not part of ``make bench``: it needs paired runs.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import re
import shlex
import sys
from collections.abc import Sequence

from bench.stats import median, rate_since

_READY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[INFO\] \[\^Worker\]: Ready")


def ready_at_ms(log_text: str) -> float | None:
    """When faust's worker logged "Ready" (it starts fetching then), as ms since the epoch; None if it did not.

    faust writes the local time of this machine without a zone, as the standard library's logging does."""
    for line in log_text.splitlines():
        found = _READY.match(line)
        if found:
            stamp = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone()
            return stamp.timestamp() * 1000
    return None


def rate_from_ready(log_text: str, last_profile_ms: int, folded_total: int) -> float | None:
    """Events per second from the worker's "Ready" (in its log) to its last profile, every event it folded
    counted (None: no Ready line)."""
    measured = rate_since(ready_at_ms(log_text), last_profile_ms, folded_total)
    return None if measured is None else measured[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the paired drains and print a Markdown table of both clocks."""
    parser = argparse.ArgumentParser(prog="python -m bench.drain_clock", description=__doc__)
    parser.add_argument("--baseline", required=True, metavar="REV", help="the earlier worker to compare with")
    parser.add_argument("--pairs", type=int, default=2, help="drains of each worker, alternating which goes first")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args(argv)
    # The benchmark's Kafka clients come with the bench extra: imported here, so the parts above (and their
    # test) need only the dev install that `make test` has.
    from bench.broker import BenchBroker
    from bench.checkout import checkout_of, remove_checkout
    from bench.load import LoadSpec
    from bench.procs import REPO_ROOT
    from bench.runs import BenchEnv, prepare_dataset, run_drain
    from bench.suite import workdir_for
    from streams.settings import load_settings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workdir = workdir_for(REPO_ROOT)
    broker = BenchBroker()
    bootstrap = broker.start_fresh()
    checkout = checkout_of(args.baseline, workdir)
    rows: list[tuple[str, float, float | None]] = []
    try:
        env = BenchEnv(bootstrap, workdir, load_settings(kafka_bootstrap=bootstrap, log_level="info"), print, checkout)
        dataset = prepare_dataset(env, "drain", LoadSpec(args.users, args.events, mean_gap_ms=2))
        for pair in range(args.pairs):
            order = ["profilestream", "baseline"] if pair % 2 == 0 else ["baseline", "profilestream"]
            for variant in order:
                result, _ = run_drain(env, dataset, variant, pair)  # type: ignore[arg-type]
                assert result is not None
                log_text = result.log_path.read_text(errors="replace") if result.log_path else ""
                rows.append(
                    (
                        variant,
                        result.rate_from_first_profile,
                        rate_from_ready(log_text, result.last_profile_ms, result.folded_total),
                    )
                )
                print(f"{variant}: {result.rate_from_first_profile:,.0f} events/s from the first profile, "
                      f"{rows[-1][2] or float('nan'):,.0f} from Ready", flush=True)  # fmt: skip
    finally:
        broker.stop_and_wipe()
        remove_checkout(checkout)
    print(render(rows, args.baseline, shlex.join(["python", "-m", "bench.drain_clock", *(argv or sys.argv[1:])])))
    return 0


def render(rows: Sequence[tuple[str, float, float | None]], baseline: str, command: str) -> str:
    """The drains by both clocks, and the ratio of the medians by each."""
    lines = [
        f"`{command}`",
        "",
        "| worker | from the first profile (events/s) | from Ready (events/s) |",
        "| --- | ---: | ---: |",
    ]
    for variant, by_profile, by_ready in rows:
        name = f"`{baseline}`" if variant == "baseline" else "this tree"
        lines.append(f"| {name} | {by_profile:,.0f} | {'-' if by_ready is None else f'{by_ready:,.0f}'} |")
    ours = [r for r in rows if r[0] == "profilestream"]
    theirs = [r for r in rows if r[0] == "baseline"]
    if ours and theirs:
        by_profile = median([r[1] for r in ours]) / median([r[1] for r in theirs])
        readies_ours = [r[2] for r in ours if r[2] is not None]
        readies_theirs = [r[2] for r in theirs if r[2] is not None]
        by_ready = median(readies_ours) / median(readies_theirs) if readies_ours and readies_theirs else None
        shown = "-" if by_ready is None else f"{by_ready:.2f}x"
        lines.append(f"| this tree ÷ `{baseline}` (medians) | {by_profile:.2f}x | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
