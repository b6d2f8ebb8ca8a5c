"""One measured run: a worker draining a pre-loaded backlog, or a worker under paced loads.

A :class:`Dataset` is a schedule pre-loaded once into topics of its own prefix; every drain run over it is a
fresh worker (its own consumer group, state directory and changelog) that starts at the earliest offsets, so all
runs and all variants see exactly the same messages.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from bench.drain_clock import ready_at_ms
from bench.freshness import PhaseLatencies, event_latencies_ms, settled_summary
from bench.kafka_io import LoadResult, ProfileRecorder, end_offsets, preload
from bench.load import EventEncoder, LoadSpec, Schedule, build_schedule
from bench.paced import PacedLoad, PacedLog, PacedPlan
from bench.procs import (
    Variant,
    WorkerProcess,
    cpu_seconds,
    free_port,
    peak_rss_bytes,
    start_worker_from,
)
from bench.pyspy import ProfileSummary, SpyRecording
from bench.stats import LatencySummary, drain_rate, folded_by, rate_since
from state.reader import store_stats
from streams.client.admin import create_topics
from streams.contract.events import EVENT_TYPES
from streams.contract.topics import DEADLETTER, PROFILES, input_topic
from streams.settings import Settings
from streams.worker.store_layout import OFFSET_KEY, table_dir, worker_stores

STALL_S = 90.0
"""A run fails when no profile arrives for this long before it is done."""


@dataclass(frozen=True)
class BenchEnv:
    """Where the benchmark runs: the broker, a scratch directory and the settings every worker shares."""

    bootstrap: str
    workdir: Path
    base: Settings
    log: Callable[[str], None]
    baseline: Path | None = None
    """A checkout of an earlier commit whose worker runs as the ``baseline`` variant (None: not measured)."""
    baseline_paced: bool = False
    """Whether the freshness section paces the baseline worker too (``--baseline``), not only drains it."""

    def settings(self, prefix: str, app_id: str) -> Settings:
        """Settings of one worker: the dataset's topics, a fresh group and state directory, free ports."""
        # faust creates the state directory but not its parents.
        (self.workdir / "state").mkdir(parents=True, exist_ok=True)
        return self.base.model_copy(
            update={
                "kafka_bootstrap": self.bootstrap,
                "topic_prefix": prefix,
                "app_id": app_id,
                "state_dir": self.workdir / "state" / app_id,
                "metrics_port": free_port(),
                "web_port": free_port(),
            }
        )


@dataclass(frozen=True)
class Dataset:
    """A schedule pre-loaded into the input topics of ``prefix``."""

    name: str
    prefix: str
    schedule: Schedule
    load: LoadResult

    @property
    def events(self) -> int:
        """Events in the backlog."""
        return len(self.schedule)

    @property
    def users(self) -> int:
        """Users with at least one event."""
        return int(np.count_nonzero(self.schedule.events_per_user()))


def input_topics(settings: Settings) -> dict[str, str]:
    """Event type -> full input topic name."""
    return {t: settings.topic(input_topic(t)) for t in EVENT_TYPES}


def prepare_dataset(env: BenchEnv, name: str, spec: LoadSpec) -> Dataset:
    """Create the dataset's topics and pre-load its schedule as fast as the broker takes it."""
    prefix = f"bench.{name}."
    settings = env.settings(prefix, f"bench-{name}-admin")
    create_topics(settings)
    schedule = build_schedule(spec)
    result = preload(env.bootstrap, input_topics(settings), EventEncoder(schedule).messages())
    env.log(f"pre-loaded {name}: {result.events:,} events in {result.seconds:.1f} s ({result.events_per_s:,.0f}/s)")
    return Dataset(name, prefix, schedule, result)


_STEP_KINDS = ("new", "refold", "base", "rebuild")
_SCRAPED = (
    "profilestream_encoder_step_seconds_sum",
    "profilestream_batch_processing_seconds_sum",
    "profilestream_batch_size_events_count",
    "profilestream_batch_size_events_sum",
    *(f'profilestream_encoder_steps_total{{kind="{kind}"}}' for kind in _STEP_KINDS),
)


@dataclass(frozen=True)
class MetricsSample:
    """The worker's own counters that the benchmark reads from /metrics."""

    encoder_s: float
    batches_s: float
    batches: float = 0.0
    batch_events: float = 0.0
    new_steps: float = 0.0
    refold_steps: float = 0.0
    base_steps: float = 0.0
    rebuild_steps: float = 0.0

    @property
    def steps(self) -> float:
        """Every GRU step the worker ran."""
        return self.new_steps + self.refold_steps + self.base_steps + self.rebuild_steps

    @classmethod
    def scrape(cls, port: int) -> MetricsSample | None:
        """Read /metrics; None when the worker serves none."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        values: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in _SCRAPED:
                values[name] = float(value)
        return cls(*(values.get(name, 0.0) for name in _SCRAPED))


@dataclass(frozen=True)
class DrainResult:
    """One worker draining a backlog."""

    variant: Variant
    events: int
    """Events counted in the rate (all of them from "Ready"; after the first unit from the first profile)."""
    seconds: float
    events_per_s: float
    cpu_s_per_1k: float
    encoder_cpu_share: float | None
    """Encoder wall time over the worker's CPU time during the drain (torch runs one thread)."""
    mean_batch_events: float | None
    """Events per micro-batch during the drain, from the worker's own histogram."""
    refold_share: float | None
    """Re-folded GRU steps (an event arrived after a later one of its user) over all steps, during the drain."""
    peak_rss_bytes: int
    profiles: int
    profile_bytes_per_update: float
    state_bytes_per_user: float
    """Bytes of every file in the worker's state directory per user, after the worker stopped."""
    state_value_bytes_per_user: float | None
    """Mean encoded record size (profilestream's own store only)."""
    dead_letters: int
    last_profile_ms: int = 0
    """When the last profile of the drain was made (the worker's clock, ms since the epoch)."""
    folded_total: int = 0
    """Events the worker had folded by its last profile, all of them (``events`` leaves out the first unit)."""
    log_path: Path | None = None
    """The (first) worker's log."""
    rate_from_first_profile: float = 0.0
    """Events per second from the first profile at which ``from_total`` events were folded (the earlier clock)."""


def _state_dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_drain(
    env: BenchEnv,
    dataset: Dataset,
    variant: Variant,
    run: int,
    *,
    from_total: int = 1,
    spy_s: float | None = None,
    spy_out: Path | None = None,
    processes: int = 1,
) -> tuple[DrainResult | None, ProfileSummary | None]:
    """Start ``processes`` fresh ``variant`` workers (one consumer group) on the dataset and measure them until
    every user's events are folded.

    With ``from_total`` 1 (a whole drain) the rate and the CPU time (of all processes) count every event, from
    the worker's "Ready" (faust writes it at INFO as the worker starts fetching): a worker that decodes its
    first poll before its first unit is timed with that decoding. Several processes are timed from the last
    one's "Ready", counting the events folded since. A worker without that line (the bare Python
    limit loop, or one logging above INFO) is timed from its first profile, as is every drain with a larger
    ``from_total`` (a measurement that starts later on purpose). The encoder's share (of the first process) and
    the events per unit count from the first profile at which ``from_total`` events were folded. With ``spy_s``,
    py-spy records the first worker for that many seconds from the first profile, or until its backlog is done,
    and the run stops there (no result).
    """
    app_id = f"bench-{dataset.name}-{variant}-{processes}p-{run}-{time.time_ns() % 10**8}"
    settings = env.settings(dataset.prefix, app_id)
    if processes > 1:
        # Processes started together join the group seconds apart: without a settle time the first drains alone
        # and then hands half its partitions over, and the run measures that instead of their shared drain.
        settings = settings.model_copy(update={"rebalance_settle_s": MULTI_PROCESS_SETTLE_S})
    others = _other_processes(settings, processes)
    profiles_topic = settings.topic(PROFILES)
    deadletter_topic = settings.topic(DEADLETTER)
    dead_before = sum(end_offsets(env.bootstrap, deadletter_topic).values())
    recorder = ProfileRecorder(
        env.bootstrap, profiles_topic, end_offsets(env.bootstrap, profiles_topic), dataset.schedule.spec.users
    )
    recorder.expect(dataset.schedule.events_per_user())
    checkout = env.baseline if variant == "baseline" else None
    worker = start_worker_from(checkout, variant, settings, env.workdir / "logs" / f"{app_id}.log")
    helpers = [
        start_worker_from(checkout, variant, other, env.workdir / "logs" / f"{app_id}-{n}.log")
        for n, other in enumerate(others, 1)
    ]
    workers = [worker, *helpers]
    spy: SpyRecording | None = None
    try:
        cpu0 = 0.0
        cpu_at_ready: float | None = None
        metrics0: MetricsSample | None = None
        last_progress = time.monotonic()
        while not recorder.done:
            if cpu_at_ready is None and from_total == 1 and all(_is_ready(w) for w in workers):
                # Sampled within one poll (0.2 s) of the last worker's line: one that has only begun its first
                # fetch.
                cpu_at_ready = sum(cpu_seconds(w.pid) for w in workers)
            if recorder.poll(0.2):
                last_progress = time.monotonic()
                if metrics0 is None and recorder.folded >= from_total:
                    # CPU and encoder time are counted from the same point as the rate.
                    cpu0 = sum(cpu_seconds(w.pid) for w in workers)
                    metrics0 = MetricsSample.scrape(settings.metrics_port) or MetricsSample(0.0, 0.0)
                if spy is None and spy_s is not None and spy_out is not None:
                    spy = SpyRecording.start(worker.pid, spy_s, spy_out)
            if spy is not None and not spy.running():
                return None, spy.result()
            for each in workers:
                _check_alive(each, last_progress, recorder)
        if spy is not None:
            # The backlog ran out before the recording did: end it before the worker stops, so that its
            # shutdown (faust's, a full garbage collection) is not sampled as work.
            spy.stop()
            return None, spy.result()
        cpu1 = sum(cpu_seconds(w.pid) for w in workers)
        rss = max(peak_rss_bytes(w.pid) for w in workers)
        metrics1 = MetricsSample.scrape(settings.metrics_port)
    finally:
        code = worker.stop()
        for each in helpers:
            each.stop()
        recorder.close()
    if code != 0:
        env.log(f"warning: {variant} worker exited with {code}; log: {worker.log_path}")
    rate, events, seconds = drain_rate(recorder.updated_ms, recorder.folded_total, from_total)
    rate_from_first_profile = rate
    last_profile_ms = max(recorder.updated_ms, default=0)
    folded_total = max(recorder.folded_total, default=0)
    readies = [r for r in (ready_at_ms(_log_text(w)) for w in workers) if r is not None]
    # Several processes are timed from the last one's "Ready", counting only what was folded since: a process
    # that becomes ready before the others have joined the group drains alone until the rebalance that lets
    # them in, which measured the processes' start-up race, not what they drain together.
    all_ready = max(readies) if readies and len(readies) == len(workers) else None
    from_ready = (
        None
        if all_ready is None
        else rate_since(all_ready, last_profile_ms,
                        folded_total - folded_by(all_ready, recorder.updated_ms, recorder.folded_total))
    )  # fmt: skip
    # The encoder's time is counted from the first profile (its metric is scraped then), so its share is of the
    # CPU time from there too, whatever span the rate and the CPU per event take.
    cpu_at_first_profile = cpu0
    if from_total == 1 and from_ready is not None and cpu_at_ready is not None:
        (rate, events, seconds), cpu0 = from_ready, cpu_at_ready
    encoder_share = mean_batch = refold_share = None
    if metrics0 is not None and metrics1 is not None and cpu1 > cpu_at_first_profile and processes == 1:
        encoder_share = (metrics1.encoder_s - metrics0.encoder_s) / (cpu1 - cpu_at_first_profile)
    if metrics0 is not None and metrics1 is not None and metrics1.batches > metrics0.batches:
        mean_batch = (metrics1.batch_events - metrics0.batch_events) / (metrics1.batches - metrics0.batches)
    if metrics0 is not None and metrics1 is not None and metrics1.steps > metrics0.steps:
        refold_share = (metrics1.refold_steps - metrics0.refold_steps) / (metrics1.steps - metrics0.steps)
    users = dataset.users
    value_per_user: float | None = None
    if variant in ("profilestream", "naive") and processes == 1 and table_dir(settings.state_dir).is_dir():
        stores = worker_stores(settings.state_dir)
        value_per_user = store_stats(stores, skip_keys=frozenset({OFFSET_KEY})).value_bytes_per_user
    state_bytes = sum(_state_dir_bytes(s.state_dir) for s in (settings, *others))
    for each_settings in (settings, *others):
        shutil.rmtree(each_settings.state_dir, ignore_errors=True)
    result = DrainResult(
        variant=variant,
        events=events,
        seconds=seconds,
        events_per_s=rate,
        cpu_s_per_1k=(cpu1 - cpu0) / max(1, events) * 1000,
        encoder_cpu_share=encoder_share,
        mean_batch_events=mean_batch,
        refold_share=refold_share,
        peak_rss_bytes=rss,
        profiles=recorder.count,
        profile_bytes_per_update=recorder.record_bytes / max(1, recorder.count),
        state_bytes_per_user=state_bytes / users,
        state_value_bytes_per_user=value_per_user,
        dead_letters=sum(end_offsets(env.bootstrap, deadletter_topic).values()) - dead_before,
        last_profile_ms=last_profile_ms,
        folded_total=folded_total,
        log_path=worker.log_path,
        rate_from_first_profile=rate_from_first_profile,
    )
    return result, None


MULTI_PROCESS_SETTLE_S = 8.0
"""The rebalance settle time of the workers of a drain of several processes: on two busy cores the second process
joined the group 3 to 6 s after the first (worker logs of `make bench`, 2026-12-03)."""


def _other_processes(settings: Settings, processes: int) -> list[Settings]:
    """Settings of the second and later worker processes of ``settings``' group: own state directory and ports."""
    return [
        settings.model_copy(
            update={"state_dir": settings.state_dir.with_name(f"{settings.app_id}-{n}"), "metrics_port": free_port(),
                    "web_port": free_port()}
        )
        for n in range(1, processes)
    ]  # fmt: skip


GROUP_SETTLE_TIMEOUT_S = 90.0
"""Longest a paced run of several processes waits after its warm-up for all of them to be in a stable group."""


def _wait_for_stable_group(
    settings: Settings, processes: int, workers: list[WorkerProcess], recorder: ProfileRecorder
) -> None:
    """Return once the workers' group is stable with ``processes`` members; raise if it is not within
    `GROUP_SETTLE_TIMEOUT_S` (a measured phase would then hold a rebalance)."""
    deadline = time.monotonic() + GROUP_SETTLE_TIMEOUT_S
    while _stable_members(settings) != processes:
        for each in workers:
            _check_alive(each, time.monotonic(), recorder)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the group of {processes} worker processes was not stable after the warm-up")
        time.sleep(0.5)


def _stable_members(settings: Settings) -> int:
    """Members of ``settings``' worker group if it is stable, else 0."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    except KafkaError:
        return 0
    try:
        group = admin.describe_groups([settings.app_id]).get(settings.app_id) or {}
    except KafkaError:
        return 0  # e.g. the coordinator is still being elected
    finally:
        admin.close()
    return len(group.get("members", [])) if group.get("group_state") == "Stable" else 0


def _log_text(worker: WorkerProcess) -> str:
    return worker.log_path.read_text(errors="replace") if worker.log_path.is_file() else ""


def _is_ready(worker: WorkerProcess) -> bool:
    return ready_at_ms(_log_text(worker)) is not None


def _check_alive(worker: WorkerProcess, last_progress: float, recorder: ProfileRecorder) -> None:
    if not worker.alive():
        raise RuntimeError(f"{worker.variant} worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
    if time.monotonic() - last_progress > STALL_S:
        raise RuntimeError(
            f"{worker.variant} worker made no profile for {STALL_S:.0f} s with {recorder.remaining} users left "
            f"(dead letters? see {worker.log_path})"
        )


@dataclass(frozen=True)
class PacedPhase:
    """One offered rate for a fixed time."""

    label: str
    rate_per_s: float
    duration_s: float


@dataclass(frozen=True)
class PhaseResult:
    """Freshness of one paced phase."""

    phase: PacedPhase
    sent: int
    achieved_per_s: float
    latency: LatencySummary
    made: LatencySummary
    """Event time to the covering profile's ``updated_at``: the worker's part of the latency."""
    missing: int
    """Events no profile covered (should be 0)."""
    settled: LatencySummary | None = None
    """Latency of the events sent after the phase's first :data:`~bench.freshness.SETTLE_MS` (None: none were):
    the phase at its rate, without the step from the previous one."""


def run_paced(
    env: BenchEnv,
    variant: Variant,
    run: int,
    spec: LoadSpec,
    phases: list[PacedPhase],
    warmup: PacedPhase,
    refine: Callable[[list[PhaseResult]], PacedPhase | None] | None = None,
    on_phase: Callable[[PacedPhase, int], None] | None = None,
    processes: int = 1,
    on_latencies: Callable[[PacedPhase, PhaseLatencies], None] | None = None,
) -> list[PhaseResult]:
    """``processes`` workers of one group (one by default) on fresh topics; a warm-up, then each phase in turn,
    each drained before the next starts.

    With ``refine``, more phases follow in the same worker, each chosen from the results so far, until it returns
    None; their results come after those of ``phases``. ``on_phase`` is called with each phase and the worker's
    process id as the phase's load starts; ``on_latencies`` with each measured phase's per-event latencies.
    """
    name = f"paced-{variant}-{run}-{time.time_ns() % 10**8}"
    settings = env.settings(f"bench.{name}.", f"bench-{name}")
    create_topics(settings)
    profiles_topic = settings.topic(PROFILES)
    schedule = build_schedule(spec)
    recorder = ProfileRecorder(env.bootstrap, profiles_topic, end_offsets(env.bootstrap, profiles_topic), spec.users)
    checkout = env.baseline if variant == "baseline" else None
    others = _other_processes(settings, processes)
    worker = start_worker_from(checkout, variant, settings, env.workdir / "logs" / f"{name}.log")
    workers = [worker] + [
        start_worker_from(checkout, variant, other, env.workdir / "logs" / f"{name}-{n}.log")
        for n, other in enumerate(others, 1)
    ]
    results: list[PhaseResult] = []
    next_index = 0

    def planned() -> Iterator[PacedPhase]:
        yield warmup
        yield from phases
        while refine is not None and (extra := refine(results)) is not None:
            yield extra

    try:
        for phase in planned():
            plan = PacedPlan(
                env.bootstrap,
                input_topics(settings),
                spec,
                next_index,
                phase.rate_per_s,
                phase.duration_s,
                env.workdir / f"{name}-{phase.label}.npz",
            )
            load = PacedLoad(plan)
            if on_phase is not None:
                on_phase(phase, worker.pid)
            last_progress = time.monotonic()
            while load.running():
                if recorder.poll(0.05):
                    last_progress = time.monotonic()
                for each in workers:
                    _check_alive(each, last_progress, recorder)
            sent = load.result()
            recorder.expect(np.bincount(schedule.user[: sent.end], minlength=spec.users).astype(np.int64))
            while not recorder.done:
                if recorder.poll(0.05):
                    last_progress = time.monotonic()
                for each in workers:
                    _check_alive(each, last_progress, recorder)
            next_index = sent.end
            if phase is warmup and processes > 1:
                # The processes join seconds apart: a measured phase must not hold the rebalance that lets the
                # last one in (the drains' start-up race, docs/performance.md).
                _wait_for_stable_group(settings, processes, workers, recorder)
            if phase is not warmup:
                latencies = _phase_latencies(sent, schedule, recorder)
                results.append(_phase_result(phase, latencies))
                if on_latencies is not None:
                    on_latencies(phase, latencies)
    finally:
        for each in workers:
            each.stop()
        recorder.close()
        for each_settings in (settings, *others):
            shutil.rmtree(each_settings.state_dir, ignore_errors=True)
    return results


def profile_paced(
    env: BenchEnv, spec: LoadSpec, phase: PacedPhase, warmup: PacedPhase, out_path: Path
) -> ProfileSummary:
    """py-spy on a fresh worker under a paced load: after ``warmup``, for ``phase``'s length from its start.

    The recording ends a second before the phase's load does, so the queue left at its end and the worker's
    shutdown are not sampled.
    """
    recordings: list[SpyRecording] = []

    def start(current: PacedPhase, pid: int) -> None:
        if current is phase:
            recordings.append(SpyRecording.start(pid, max(phase.duration_s - 1, 1), out_path))

    run_paced(env, "profilestream", 99, spec, [phase], warmup, on_phase=start)
    return recordings[0].result()


def _phase_latencies(sent: PacedLog, schedule: Schedule, recorder: ProfileRecorder) -> PhaseLatencies:
    users = schedule.user[sent.index]
    return PhaseLatencies(
        sent_ms=sent.ts_ms,
        read=event_latencies_ms(users, sent.ts_ms, recorder.user, recorder.last_event_ts_ms, recorder.read_ms),
        made=event_latencies_ms(users, sent.ts_ms, recorder.user, recorder.last_event_ts_ms, recorder.updated_ms),
    )


def _phase_result(phase: PacedPhase, latencies: PhaseLatencies) -> PhaseResult:
    read, made, sent_ms = latencies.read, latencies.made, latencies.sent_ms
    covered = read[~np.isnan(read)]
    span_s = (int(sent_ms[-1]) - int(sent_ms[0])) / 1000 if sent_ms.shape[0] > 1 else 0.0
    return PhaseResult(
        phase=phase,
        sent=int(sent_ms.shape[0]),
        achieved_per_s=sent_ms.shape[0] / span_s if span_s > 0 else 0.0,
        latency=LatencySummary.of(covered),
        made=LatencySummary.of(made[~np.isnan(made)]),
        missing=int(read.shape[0] - covered.shape[0]),
        settled=settled_summary(latencies),
    )
