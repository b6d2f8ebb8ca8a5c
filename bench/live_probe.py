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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.broker import BenchBroker
from bench.freshness import SETTLE_MS, settled
from bench.load import LoadSpec
from bench.markdown import num, table
from bench.procs import REPO_ROOT
from bench.runs import BenchEnv, PacedPhase, PhaseLatencies, run_paced
from bench.stats import LatencySummary, percentile
from bench.suite import workdir_for
from bench.suite_config import DEFAULT
from streams.settings import load_settings

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_MARGIN_S = 2.0
"""CPU is counted from this long after the phase starts to this long before it ends (start-up and shutdown of
the load are not the phase)."""

BROKER_THREAD_GROUPS: tuple[tuple[str, str], ...] = (
    ("data-plane", "network and request handlers"),
    ("C2 Compiler", "JIT compiler"),
    ("C1 Compiler", "JIT compiler"),
    ("GC Thread", "garbage collector"),
    ("G1 ", "garbage collector"),
)
"""Java thread names (as the kernel keeps them, cut to 15 characters) by prefix, and the group they count in."""


def process_label(cmdline: str, pid: int, parent: int, me: int) -> str | None:
    """Which part of the benchmark a process is, from its command line; None for anything else."""
    if pid == me:
        return "benchmark (profile reader)"
    if "kafka.Kafka" in cmdline:
        return "broker"
    if "streams.cli worker" in cmdline:
        return "worker"
    if parent == me and "spawn_main" in cmdline:
        return "paced load"
    return None


def broker_thread_group(thread_name: str) -> str:
    """The group a broker thread's CPU counts in."""
    for prefix, group in BROKER_THREAD_GROUPS:
        if thread_name.startswith(prefix):
            return group
    return "other threads"


def _stat_fields(text: str) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow its last ")".
    return text.rsplit(")", 1)[1].split()


def _cpu_s(fields: Sequence[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far, per labelled process and per broker thread group, at one moment."""

    at: float
    processes: dict[str, float]
    broker_threads: dict[str, float]


def sample_cpu(me: int) -> CpuSample:
    """Read /proc for the benchmark's processes."""
    processes: dict[str, float] = {}
    threads: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(Path(f"/proc/{entry}/stat").read_text())
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        label = process_label(cmdline, int(entry), int(fields[1]), me)
        if label is None:
            continue
        processes[label] = processes.get(label, 0.0) + _cpu_s(fields)
        if label == "broker":
            for group, cpu in _thread_cpu(int(entry)).items():
                threads[group] = threads.get(group, 0.0) + cpu
    return CpuSample(time.monotonic(), processes, threads)


def _thread_cpu(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except OSError:
            continue
        group = broker_thread_group(text.split("(", 1)[1].rsplit(")", 1)[0])
        out[group] = out.get(group, 0.0) + _cpu_s(_stat_fields(text))
    return out


def core_shares(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Share of one core each name used between two samples (names in both), largest first."""
    shares = {name: (after[name] - before[name]) / seconds for name in after if name in before}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))


@dataclass(frozen=True)
class SeriesRow:
    """The events sent within one bin of the phase."""

    start_s: float
    events: int
    made_p50_ms: float
    made_p99_ms: float
    read_p99_ms: float


def latency_series(latencies: PhaseLatencies, bin_ms: int) -> list[SeriesRow]:
    """Latency percentiles of the covered events, per ``bin_ms`` of send time from the phase's first event."""
    sent = np.asarray(latencies.sent_ms, dtype=np.int64)
    if sent.shape[0] == 0:
        return []
    bins = (sent - sent.min()) // bin_ms
    rows = []
    for index in range(int(bins.max()) + 1):
        chosen = bins == index
        made = np.sort(latencies.made[chosen & ~np.isnan(latencies.made)])
        read = np.sort(latencies.read[chosen & ~np.isnan(latencies.read)])
        if made.shape[0] == 0 or read.shape[0] == 0:
            continue
        rows.append(
            SeriesRow(
                start_s=index * bin_ms / 1000,
                events=int(chosen.sum()),
                made_p50_ms=percentile(made, 50),
                made_p99_ms=percentile(made, 99),
                read_p99_ms=percentile(read, 99),
            )
        )
    return rows


def render(
    rate: float, seconds: float, cpu: tuple[CpuSample, CpuSample], latencies: PhaseLatencies, bin_ms: int
) -> str:
    """The Markdown report of one probe."""
    before, after = cpu
    span = after.at - before.at
    read = latencies.read[~np.isnan(latencies.read)]
    late = latencies.read[settled(latencies.sent_ms) & ~np.isnan(latencies.read)]
    whole = LatencySummary.of(read)
    lines = [
        f"`python -m bench.live_probe --rate {rate:g} --seconds {seconds:g} --bin-ms {bin_ms}`: "
        f"{latencies.sent_ms.shape[0]:,} events, p50 {num(whole.p50_ms)} ms, p99 {num(whole.p99_ms)} ms "
        f"(after the first {SETTLE_MS / 1000:.0f} s: "
        f"{num(LatencySummary.of(late).p99_ms) if late.shape[0] else '-'} ms), "
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
