"""One paced load on a fresh benchmark broker, looked at closely: CPU per process and latency second by second.

The freshness section gives one p99 per load; when it misses, this says where the time went. A fresh worker
takes a warm-up load, then ``--rate`` events/s for ``--seconds``; the report shows

- the share of a core each process used over the middle of the phase (the worker, the broker with its threads
  grouped, the paced load, this process reading profiles): on these two cores they all compete;
- per ``--bin-ms`` of send time, the worker's part of the latency (p50 and p99 of event time to ``updated_at``)
  and p99 of event time to a consumer reading the profile, so a queue left by the step up from the warm-up, a
  steady state and a stall each show as what they are.

    python -m bench.live_probe --rate 4500 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

from bench.broker import BenchBroker
from bench.freshness import SETTLE_MS, PhaseLatencies, latency_series, settled_summary
from bench.load import LoadSpec
from bench.markdown import num, table
from bench.proc_cpu import CpuSample, core_shares, sample_cpu
from bench.procs import REPO_ROOT
from bench.runs import BenchEnv, PacedPhase, run_paced
from bench.stats import LatencySummary
from bench.suite import workdir_for
from bench.suite_config import DEFAULT
from streams.settings import load_settings

SAMPLE_MARGIN_S = 2.0
"""CPU is counted from this long after the phase starts to this long before it ends (start-up and shutdown of
the load are not the phase)."""


def render(
    rate: float, seconds: float, cpu: tuple[CpuSample, CpuSample], latencies: PhaseLatencies, bin_ms: int
) -> str:
    """The Markdown report of one probe."""
    before, after = cpu
    span = after.at - before.at
    read = latencies.read[~np.isnan(latencies.read)]
    late = settled_summary(latencies)
    whole = LatencySummary.of(read)
    lines = [
        f"`python -m bench.live_probe --rate {rate:g} --seconds {seconds:g} --bin-ms {bin_ms}`: "
        f"{latencies.sent_ms.shape[0]:,} events, p50 {num(whole.p50_ms)} ms, p99 {num(whole.p99_ms)} ms "
        f"(after the first {SETTLE_MS / 1000:.0f} s: "
        f"{num(late.p99_ms if late else None)} ms), "
        f"{int(np.isnan(latencies.read).sum())} uncovered.",
        "",
        f"CPU over {span:.1f} s of the phase, share of one core:",
        "",
        *table(["process", "share of a core"], [[name, f"{share:.0%}"] for name, share in core_shares(
            before.processes, after.processes, span).items()]),
        "",
        *table(["broker threads", "share of a core"], [[name, f"{share:.0%}"] for name, share in core_shares(
            before.broker_threads, after.broker_threads, span).items()]),
        "",
        f"Latency by send time ({bin_ms} ms bins):",
        "",
        *table(
            ["from s", "events", "made p50 ms", "made p99 ms", "read p99 ms"],
            [
                [f"{row.start_s:g}", f"{row.events:,}", num(row.made_p50_ms), num(row.made_p99_ms),
                 num(row.read_p99_ms)]
                for row in latency_series(latencies, bin_ms)
            ],
        ),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def probe(rate: float, seconds: float, warmup_rate: float, warmup_s: float) -> tuple[
    tuple[CpuSample, CpuSample], PhaseLatencies
]:  # fmt: skip
    """Run the phase on a fresh benchmark broker; the CPU samples around its middle and its latencies."""
    if seconds <= 2 * SAMPLE_MARGIN_S + 1:
        raise ValueError(f"--seconds must be above {2 * SAMPLE_MARGIN_S + 1:g}")
    me = os.getpid()
    phase = PacedPhase("probe", rate, seconds)
    samples: list[CpuSample] = []
    found: list[PhaseLatencies] = []

    def sample_phase() -> None:
        time.sleep(SAMPLE_MARGIN_S)
        samples.append(sample_cpu(me))
        time.sleep(seconds - 2 * SAMPLE_MARGIN_S)
        samples.append(sample_cpu(me))

    def on_phase(current: PacedPhase, pid: int) -> None:
        if current is phase:
            threading.Thread(target=sample_phase, name="cpu-sampler", daemon=True).start()

    def on_latencies(current: PacedPhase, latencies: PhaseLatencies) -> None:
        found.append(latencies)

    broker = BenchBroker()
    bootstrap = broker.start_fresh()
    try:
        base = load_settings(kafka_bootstrap=bootstrap, log_level="info")
        if DEFAULT.unit_events is not None:
            base = base.model_copy(update={"batch_max_events": DEFAULT.unit_events})
        env = BenchEnv(bootstrap, workdir_for(REPO_ROOT), base, lambda line: print(line, file=sys.stderr))
        users = DEFAULT.drain_users
        spec = LoadSpec(users, int(rate * seconds + warmup_rate * warmup_s) + users, mean_gap_ms=2)
        run_paced(
            env, "profilestream", 0, spec, [phase], PacedPhase("warm-up", warmup_rate, warmup_s),
            on_phase=on_phase, on_latencies=on_latencies,
        )  # fmt: skip
    finally:
        broker.stop_and_wipe()
    if len(samples) != 2 or not found:
        raise RuntimeError("the phase ended before its CPU was sampled")
    return (samples[0], samples[1]), found[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.live_probe``."""
    parser = argparse.ArgumentParser(prog="python -m bench.live_probe", description=__doc__)
    parser.add_argument("--rate", type=float, required=True, help="events per second of the phase")
    parser.add_argument("--seconds", type=float, default=20, help="length of the phase")
    parser.add_argument("--warmup-rate", type=float, default=300, help="events per second before it")
    parser.add_argument("--warmup-s", type=float, default=8, help="length of the warm-up")
    parser.add_argument("--bin-ms", type=int, default=1000, help="bins of send time for the latency series")
    args = parser.parse_args(argv)
    cpu, latencies = probe(args.rate, args.seconds, args.warmup_rate, args.warmup_s)
    sys.stdout.write(render(args.rate, args.seconds, cpu, latencies, args.bin_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
