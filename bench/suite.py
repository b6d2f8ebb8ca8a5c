"""The whole benchmark suite: the order of the sections and the medians the report shows (sizes: bench.suite_config)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.live_search import Trial, refinement_rate
from bench.load import LoadSpec
from bench.procs import Variant
from bench.pyspy import ProfileSummary
from bench.runs import (
    BenchEnv,
    Dataset,
    DrainResult,
    PacedPhase,
    PhaseResult,
    prepare_dataset,
    profile_paced,
    run_drain,
    run_paced,
)
from bench.speed_probe import speed_probe
from bench.state_size import StateSizeResult, measure_state_size
from bench.stats import median
from bench.suite_config import SuiteConfig, side_by_side_runs

WINDOW = 50
"""The recent window the side-by-side measures at (StateSpec.recent_window's default)."""
SIDE_BY_SIDE_UNIT_EVENTS = 2_000
"""The side-by-side's unit cap: 20 of its 100-event rounds a unit, as when the comparison was set up. At the
worker's default (20,000) its whole set (20,000 events) would be one unit, one profile per user, and no round
after the 50th would have a time of its own."""


@dataclass
class SuiteResults:
    """Everything the report shows."""

    config: SuiteConfig
    drain_dataset: Dataset | None = None
    window_dataset: Dataset | None = None
    drains: list[DrainResult] = field(default_factory=list)
    """Runs of profilestream on the drain dataset."""
    floor: list[DrainResult] = field(default_factory=list)
    """Runs of the framework floor (bench/floor_worker.py) on the drain dataset."""
    limit: list[DrainResult] = field(default_factory=list)
    """Runs of the Python limit (bench/python_limit.py, no framework) on the drain dataset."""
    baseline: list[DrainResult] = field(default_factory=list)
    """Runs of the worker of an earlier commit (``--baseline``) on the drain dataset."""
    baseline_commit: str | None = None
    baseline_freshness: list[list[PhaseResult]] = field(default_factory=list)
    """The paced loads of the freshness section with the worker of the earlier commit, run after each run."""
    two_processes: list[DrainResult] = field(default_factory=list)
    """Runs of two profilestream worker processes (one consumer group) on the drain dataset."""
    side_by_side: dict[Variant, list[DrainResult]] = field(default_factory=dict)
    max_rate_per_s: float = 0.0
    freshness: list[list[PhaseResult]] = field(default_factory=list)
    """Per run, one result per load fraction."""
    two_process_live: list[PhaseResult] = field(default_factory=list)
    """Per freshness run, two worker processes under ``config.two_process_fraction`` of the drain maximum."""
    live_refined: list[list[PhaseResult]] = field(default_factory=list)
    """Per run, the loads offered after the fixed ones to narrow the live-traffic maximum (bench.live_search)."""
    speed: list[tuple[str, float]] = field(default_factory=list)
    """The speed probe (bench.speed_probe) before each section and at the end, in seconds."""
    profile: ProfileSummary | None = None
    """The worker draining the throughput backlog."""
    live_profile: ProfileSummary | None = None
    """The worker under a paced load of ``config.live_profile_fraction`` of the drain maximum."""
    state_size: StateSizeResult | None = None
    seconds: float = 0.0


def run_suite(env: BenchEnv, config: SuiteConfig, sections: set[str], log: Callable[[str], None]) -> SuiteResults:
    """Run the chosen sections in order: throughput, side-by-side, freshness, profile, state size."""
    started = time.monotonic()
    results = SuiteResults(config)
    if sections & {"throughput", "freshness", "profile"}:
        spec = LoadSpec(config.drain_users, config.drain_events, mean_gap_ms=2)
        results.drain_dataset = prepare_dataset(env, "drain", spec)
    if "throughput" in sections and results.drain_dataset is not None:
        results.speed.append(("throughput", speed_probe()))
        for run in range(config.runs):
            drained, _ = run_drain(env, results.drain_dataset, "profilestream", run)
            assert drained is not None
            log(f"throughput run {run + 1}: {drained.events_per_s:,.0f} events/s")
            results.drains.append(drained)
            floor, _ = run_drain(env, results.drain_dataset, "floor", run)
            assert floor is not None
            log(f"throughput run {run + 1}, framework floor: {floor.events_per_s:,.0f} events/s")
            results.floor.append(floor)
            limit, _ = run_drain(env, results.drain_dataset, "limit", run)
            assert limit is not None
            log(f"throughput run {run + 1}, Python limit: {limit.events_per_s:,.0f} events/s")
            results.limit.append(limit)
            if env.baseline is not None:
                before, _ = run_drain(env, results.drain_dataset, "baseline", run)
                assert before is not None
                log(f"throughput run {run + 1}, baseline worker: {before.events_per_s:,.0f} events/s")
                results.baseline.append(before)
            pair, _ = run_drain(env, results.drain_dataset, "profilestream", run, processes=2)
            assert pair is not None
            log(f"throughput run {run + 1}, two worker processes: {pair.events_per_s:,.0f} events/s")
            results.two_processes.append(pair)
        results.max_rate_per_s = median([d.events_per_s for d in results.drains])
    if "side-by-side" in sections:
        results.speed.append(("side-by-side", speed_probe()))
        rounds = max(config.window_rounds, WINDOW + 1)
        spec = LoadSpec(config.window_users, config.window_users * rounds, user_order="rounds", mean_gap_ms=2)
        results.window_dataset = prepare_dataset(env, "window", spec)
        units = replace(env, base=env.base.model_copy(update={"batch_max_events": SIDE_BY_SIDE_UNIT_EVENTS}))
        for run, variant in side_by_side_runs(config):
            drained, _ = run_drain(units, results.window_dataset, variant, run, from_total=WINDOW * config.window_users)
            assert drained is not None
            log(f"side-by-side run {run + 1}, {variant}: {drained.events_per_s:,.0f} events/s")
            results.side_by_side.setdefault(variant, []).append(drained)
    if "freshness" in sections:
        results.speed.append(("freshness", speed_probe()))
        if not results.max_rate_per_s:
            raise RuntimeError("the freshness section needs the throughput section's maximum")
        phases = [
            PacedPhase(f"{f * 100:g}%", f * results.max_rate_per_s, config.paced_s) for f in config.load_fractions
        ]
        warmup = _warmup(config, results.max_rate_per_s)
        # A refinement load lies between two fixed ones: at most the highest fixed rate each.
        refined = config.live_refine_steps * max(p.rate_per_s for p in phases) * config.paced_s
        offered = sum(p.rate_per_s * p.duration_s for p in phases) + refined
        needed = int(warmup.rate_per_s * warmup.duration_s + offered * 1.2)
        spec = LoadSpec(config.drain_users, max(needed, 1000), seed=7)
        refine = _live_refinement(phases, results.max_rate_per_s, config)
        for run in range(config.runs):
            phase_results = run_paced(env, "profilestream", run, spec, phases, warmup, refine)
            log(
                f"freshness run {run + 1}: "
                + ", ".join(f"{r.phase.label} p99 {r.latency.p99_ms:.0f} ms" for r in phase_results)
            )
            results.freshness.append(phase_results[: len(phases)])
            results.live_refined.append(phase_results[len(phases) :])
            if config.two_process_fraction is not None and run == 0:  # once a suite: about 40 s
                fraction = config.two_process_fraction
                shared = PacedPhase(f"{fraction * 100:g}%", fraction * results.max_rate_per_s, config.paced_s)
                (spread,) = run_paced(env, "profilestream", run, spec, [shared], warmup, processes=2)
                log(f"freshness run {run + 1}, two processes at {shared.label}: p99 {spread.latency.p99_ms:.0f} ms")
                results.two_process_live.append(spread)
            if env.baseline is not None and env.baseline_paced:
                earlier = run_paced(env, "baseline", run, spec, phases, warmup)
                log(
                    f"freshness run {run + 1}, baseline worker: "
                    + ", ".join(f"{r.phase.label} p99 {r.latency.p99_ms:.0f} ms" for r in earlier)
                )
                results.baseline_freshness.append(earlier)
    if "profile" in sections and results.drain_dataset is not None:
        results.speed.append(("profile", speed_probe()))
        _, summary = run_drain(
            env,
            results.drain_dataset,
            "profilestream",
            99,
            spy_s=config.profile_s,
            spy_out=env.workdir / "profile.txt",
        )
        results.profile = summary
        log(f"profile: {summary.samples if summary else 0} samples")
        if results.max_rate_per_s:
            results.live_profile = _live_profile(env, config, results.max_rate_per_s)
            log(f"profile under live traffic: {results.live_profile.samples} samples")
    if "state-size" in sections:
        results.speed.append(("state-size", speed_probe()))
        results.state_size = measure_state_size(
            config.state_users, config.state_events_per_user, env.workdir / "state-size", env.base
        )
        log(f"state size: {results.state_size.compacted.sst_bytes_per_user:,.0f} SST bytes per user")
    results.speed.append(("end", speed_probe()))
    results.seconds = time.monotonic() - started
    return results


def _warmup(config: SuiteConfig, max_rate_per_s: float) -> PacedPhase:
    """The light load a paced run starts with, so that no measured phase carries a fresh worker's start-up."""
    return PacedPhase("warm-up", min(100.0, max_rate_per_s / 4), config.warmup_s)


def _live_profile(env: BenchEnv, config: SuiteConfig, max_rate_per_s: float) -> ProfileSummary:
    """py-spy on a fresh worker under the paced load of ``config.live_profile_fraction`` of the drain maximum."""
    fraction = config.live_profile_fraction
    phase = PacedPhase(f"{fraction * 100:g}%", fraction * max_rate_per_s, config.paced_s)
    warmup = _warmup(config, max_rate_per_s)
    needed = int((warmup.rate_per_s * warmup.duration_s + phase.rate_per_s * phase.duration_s) * 1.2)
    spec = LoadSpec(config.drain_users, max(needed, 1000), seed=8)
    return profile_paced(env, spec, phase, warmup, env.workdir / "profile-live.txt")


def _live_refinement(
    phases: list[PacedPhase], max_rate_per_s: float, config: SuiteConfig
) -> Callable[[list[PhaseResult]], PacedPhase | None]:
    """After the fixed ``phases``, up to ``config.live_refine_steps`` loads chosen by bench.live_search."""

    def refine(done: list[PhaseResult]) -> PacedPhase | None:
        rate = refinement_rate([trial_of(r) for r in done], len(phases), config.live_refine_steps)
        if rate is None:
            return None
        return PacedPhase(f"{rate / max_rate_per_s * 100:.3g}%", rate, config.paced_s)

    return refine


def trial_of(result: PhaseResult) -> Trial:
    """A paced phase's result as the live-maximum search sees it."""
    return Trial(result.phase.rate_per_s, result.achieved_per_s, result.latency.p99_ms)


SECTIONS = ("throughput", "side-by-side", "freshness", "profile", "state-size")


def workdir_for(root: Path) -> Path:
    """The scratch directory of a suite run (logs, worker state, profiles); git ignores var/."""
    path = root / "var" / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path
