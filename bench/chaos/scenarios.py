"""The chaos scenarios. Each runs on fresh topics and a fresh consumer group, with real ``profilestream worker``
processes, and ends with the worker's output scored against the offline expectation.

(a) ``backlog``: every event produced first, then one worker drains the lot.
(b) ``kills``: the worker is killed (SIGKILL) repeatedly while it drains and started again; once its state
    directory is deleted before the restart, so the state must come back from the changelog.
(c) ``broker``: the broker is paused (SIGSTOP/SIGCONT), crashed (SIGKILL) and stopped cleanly, mid-drain.
(d) ``disk_full``: the state directory on a small tmpfs that a filler file fills mid-drain, then frees.
(e) ``hostile``: a backlog with every hostile message of :mod:`bench.chaos.hostile` interleaved.

A worker that exits on its own is started again, as an orchestrator would, and counted.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.chaos.data import EventFile, chunks, interleave
from bench.chaos.expected import ExpectedProfile, expected_profiles
from bench.chaos.faults import ChaosBroker, DiskUnavailableError, Supervisor, WorkerHandle, fill_disk, small_disk
from bench.chaos.hostile import LARGE_MESSAGE_BYTES, Hostile, catalogue, pick_victims
from bench.chaos.kafka_io import Coord, Observer, Outgoing, Sender, allow_large_records, valid_record
from bench.chaos.score import (
    DeadLetterTally,
    HostileTally,
    ValidTally,
    score_dead_letters,
    score_hostile,
    score_valid,
    unexpected_users,
)
from streams.client.producer import now_ms
from streams.contract.events import Event
from streams.settings import Settings

PROGRESS_PROFILES = 20
"""Profiles a worker must have published since a fault before the next one: it is draining, not starting."""
PROGRESS_TIMEOUT_S = 240.0
"""A worker started after a SIGKILL may wait a whole consumer session (60 s) for its partitions, plus start-up."""


@dataclass
class ChaosContext:
    """What every scenario needs from its harness."""

    make_settings: Callable[..., Settings]
    """Settings with a fresh topic prefix and app id, topics created; keyword arguments override fields."""
    spawn: Callable[[Settings, str], WorkerHandle]
    """Start a ``profilestream worker`` with these settings; the string names its log."""
    workdir: Path
    log: Callable[[str], None] = print
    drain_timeout_s: float = 600.0
    """How long the final drain may take before the scenario is reported as not finished."""
    quiet_s: float = 5.0
    """No new profile or dead letter for this long, and nothing left uncommitted: the worker is done."""
    broker: ChaosBroker | None = None
    """The suite's own broker, which scenario (c) may kill; None where the broker is shared (tests)."""
    disk_mb: int = 256
    seed: int = 1
    _expected: dict[tuple[str, str], dict[str, ExpectedProfile]] = field(default_factory=dict)

    def expected(self, data: EventFile, settings: Settings) -> dict[str, ExpectedProfile]:
        """The offline expectation of ``data`` under ``settings``, computed once per file and configuration."""
        key = (data.sha256, repr((settings.state_spec(), settings.embedding_dim, settings.model_dir)))
        if key not in self._expected:
            self._expected[key] = expected_profiles(data.events, settings)
        return self._expected[key]


@dataclass
class ScenarioResult:
    """One scenario's numbers, as the results table shows them."""

    name: str
    faults: list[str] = field(default_factory=list)
    not_run: str | None = None
    """Why the scenario could not run here (reported loudly, never skipped silently)."""
    valid: ValidTally = field(default_factory=ValidTally)
    dead: DeadLetterTally = field(default_factory=DeadLetterTally)
    hostile: HostileTally = field(default_factory=HostileTally)
    unexpected_users: int = 0
    version_repeats: int = 0
    version_regressions: int = 0
    tombstones: int = 0
    worker_starts: int = 0
    worker_kills: int = 0
    worker_exits: list[int] = field(default_factory=list)
    finished: bool = False
    drain_s: float = 0.0
    wall_s: float = 0.0

    def problems(self) -> list[str]:
        """Every way the run missed the invariants; empty when it met them all."""
        if self.not_run:
            return [f"not run: {self.not_run}"]
        out = []
        if not self.finished:
            out.append(f"the worker did not finish within the drain timeout ({self.drain_s:.0f} s)")
        v = self.valid
        if v.lost:
            out.append(f"{v.lost} valid events lost ({v.users_missing} users without a profile, {v.users_short} short)")
        if v.duplicated:
            out.append(f"{v.duplicated} valid events applied twice ({v.users_over} users)")
        if v.wrong:
            out.append(
                f"{v.wrong} users with the right count but another profile (last_event_ts {v.wrong_last_ts}, "
                f"embedding {v.wrong_embedding}, aggregates {v.wrong_aggregates})"
            )
        if self.dead.valid_by_reason:
            out.append(f"valid events dead-lettered: {dict(self.dead.valid_by_reason)}")
        if self.dead.without_reason:
            out.append(f"{self.dead.without_reason} dead letters without a ps.reason header")
        out += [f"hostile {failure}" for failure in self.hostile.failures]
        if self.unexpected_users:
            out.append(f"{self.unexpected_users} users have a profile who should have none")
        if v.examples and (v.lost or v.duplicated or v.wrong):
            out.append("examples: " + "; ".join(v.examples))
            if self.version_regressions:
                out.append(f"{self.version_regressions} profiles were published with a version below the last")
        return out

    @property
    def passed(self) -> bool:
        """Whether the run met every invariant."""
        return not self.problems()


class Run:
    """One scenario's run: settings, producer, observer, worker supervisor, and the coordinates of everything
    sent (so that every dead letter can be traced to its message)."""

    def __init__(self, ctx: ChaosContext, name: str, data: EventFile, **overrides: Any) -> None:
        self.ctx = ctx
        self.name = name
        self.started = time.monotonic()
        self.settings = ctx.make_settings(**overrides)
        self.expected = ctx.expected(data, self.settings)
        self.result = ScenarioResult(name)
        self.valid: dict[Coord, str] = {}
        self.hostile: dict[Coord, Hostile] = {}
        self.rng = random.Random(f"{ctx.seed}-{name}")
        self.observer = Observer(self.settings)
        self.sender = Sender(self.settings, max_request_bytes=LARGE_MESSAGE_BYTES)
        self.supervisor = Supervisor(lambda worker: ctx.spawn(self.settings, f"{name}-{worker}"), self.log)

    def log(self, message: str) -> None:
        """Progress for the operator (no user ids)."""
        self.ctx.log(f"[{self.name} {time.monotonic() - self.started:5.0f} s] {message}")

    def fault(self, description: str) -> None:
        """Record (and log) a fault the scenario injected."""
        self.result.faults.append(description)
        self.log(description)

    def send(self, items: Sequence[Event | Hostile]) -> None:
        """Produce events and hostile messages in this order and remember where each landed."""
        records = []
        for item in items:
            if isinstance(item, Hostile):
                topic = self.settings.topic(f"events.{item.topic_type}")
                partition = item.partition(self.settings.partitions)
                records.append(Outgoing(topic, item.key, item.value, partition, item.headers))
            else:
                records.append(valid_record(self.settings, item))
        for item, coord in zip(items, self.sender.send(records), strict=True):
            if isinstance(item, Hostile):
                self.hostile[coord] = item
            else:
                self.valid[coord] = item.user_id

    def poll(self) -> int:
        """Read the worker's output so far; a broker that is down reads as nothing new."""
        try:
            return self.observer.poll()
        except Exception as exc:  # the broker may be down on purpose: there is simply nothing to read now
            self.log(f"reading the output failed for now ({type(exc).__name__})")
            return 0

    def idle(self, seconds: float) -> None:
        """Let time pass while keeping the worker alive and reading its output."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.supervisor.keep_alive()
            self.poll()
            time.sleep(0.2)

    def progress(self, profiles: int = PROGRESS_PROFILES, timeout_s: float = PROGRESS_TIMEOUT_S) -> bool:
        """Wait until the worker has published ``profiles`` more profiles: it is draining."""
        # Read up first: profiles a killed predecessor published just before it died must not count.
        while self.poll():
            pass
        target = self.observer.profile_records + profiles
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.supervisor.keep_alive()
            self.poll()
            if self.observer.profile_records >= target:
                return True
            time.sleep(0.1)
        self.log(f"no progress within {timeout_s:.0f} s")
        return False

    def drain(self) -> bool:
        """Wait until the worker is done: everything committed and the output quiet, within the drain timeout."""
        started = time.monotonic()
        deadline = started + self.ctx.drain_timeout_s
        quiet_since = started
        checked = 0.0
        while time.monotonic() < deadline:
            self.supervisor.keep_alive()
            now = time.monotonic()
            if self.poll():
                quiet_since = now
            alive = self.supervisor.worker is not None and self.supervisor.worker.proc.poll() is None
            if alive and now - quiet_since >= self.ctx.quiet_s and now - checked >= 1.0:
                checked = now
                left = self.observer.outstanding()
                if left == 0:
                    self.result.drain_s = time.monotonic() - started
                    self.log(f"drained in {self.result.drain_s:.0f} s")
                    return True
            time.sleep(0.2)
        self.result.drain_s = time.monotonic() - started
        self.log(f"not drained after {self.result.drain_s:.0f} s (uncommitted: {self.observer.outstanding()})")
        return False

    def finish(self, finished: bool) -> ScenarioResult:
        """Stop the worker, read the rest of the output and score the run."""
        self.supervisor.stop()
        self.idle(1.0)
        while self.poll():
            pass
        final = self.observer.latest
        r = self.result
        r.finished = finished
        r.valid = score_valid(self.expected, final, self.observer.peak_count)
        r.dead, by_source = score_dead_letters(self.observer.dead_letters, self.valid, self.hostile)
        r.hostile = score_hostile(self.hostile, by_source, final)
        r.unexpected_users = len(unexpected_users(final, self.expected, list(self.hostile.values())))
        r.version_repeats = self.observer.version_repeats
        r.version_regressions = self.observer.version_regressions
        r.tombstones = self.observer.tombstones
        r.worker_starts = self.supervisor.starts
        r.worker_kills = self.supervisor.kills
        r.worker_exits = self.supervisor.exit_codes
        r.wall_s = time.monotonic() - self.started
        verdict = "met every invariant" if r.passed else "; ".join(r.problems())
        self.log(f"lost {r.valid.lost}, duplicated {r.valid.duplicated}, wrong {r.valid.wrong}: {verdict}")
        return r

    def close(self) -> None:
        """Stop whatever still runs and release the clients (also after a failure)."""
        self.supervisor.stop()
        self.sender.close()
        self.observer.close()


ALL_KINDS: Literal["all"] = "all"


def backlog(
    ctx: ChaosContext,
    data: EventFile,
    hostile_kinds: Collection[str] | Literal["all"] | None = None,
    name: str = "backlog",
) -> ScenarioResult:
    """(a) Every event first (with the hostile messages of ``hostile_kinds`` mixed in, if any), then one worker."""
    run = Run(ctx, name, data)
    try:
        items: Sequence[Event | Hostile] = data.events
        if hostile_kinds is not None:
            items = _with_hostile(run, data.events, hostile_kinds)
        run.send(items)
        kinds = len({h.kind for h in run.hostile.values()})
        mixed_in = f" and {len(run.hostile)} hostile messages ({kinds} kinds)" if run.hostile else ""
        run.fault(
            f"{len(data.events)} events over {_hours(data.events):.0f} h of event time{mixed_in}"
            " produced before the worker started"
        )
        run.supervisor.start()
        return run.finish(run.drain())
    finally:
        run.close()


def hostile(ctx: ChaosContext, data: EventFile) -> ScenarioResult:
    """(e) A backlog with every hostile kind interleaved."""
    return backlog(ctx, data, hostile_kinds=ALL_KINDS, name="hostile")


def _with_hostile(run: Run, events: Sequence[Event], kinds: Collection[str] | Literal["all"]) -> list[Event | Hostile]:
    tag = "hostile-" + run.settings.topic_prefix.strip(".")
    rows = catalogue(now_ms(), tag, pick_victims(events, run.ctx.seed))
    if kinds != ALL_KINDS:
        rows = [(h, after) for h, after in rows if h.kind in kinds]
    if any(h.value is not None and len(h.value) > 1_000_000 for h, _ in rows):
        allow_large_records(run.settings, ("browse", "search", "purchase"), LARGE_MESSAGE_BYTES)
    mixed: list[Event | Hostile] = interleave(
        list(events), [(h, after) for h, after in rows if not h.at_end], seed=run.ctx.seed
    )
    # Valid rows timed near now go last: in the middle of the file they would be hours ahead of their neighbours.
    return mixed + [h for h, _ in rows if h.at_end]


def kills(
    ctx: ChaosContext, data: EventFile, kills: int = 4, wipe_at: int = 2, max_delay_s: float = 1.5
) -> ScenarioResult:
    """(b) SIGKILL the worker ``kills`` times while it drains, each time restarting it with the next part of the
    events waiting; before restart number ``wipe_at`` its state directory is deleted."""
    run = Run(ctx, "kills", data)
    try:
        parts = chunks(data.events, kills + 1)
        run.send(parts[0])
        run.supervisor.start()
        for k in range(1, kills + 1):
            draining = run.progress()
            time.sleep(run.rng.uniform(0, max_delay_s))
            run.supervisor.kill9()
            run.fault(f"kill -9 #{k}" + ("" if draining else " (the worker had published nothing yet)"))
            if k == wipe_at:
                shutil.rmtree(run.settings.state_dir, ignore_errors=True)
                run.fault("state directory deleted before the restart")
            run.send(parts[k])
            run.supervisor.start()
        return run.finish(run.drain())
    finally:
        run.close()


def broker(
    ctx: ChaosContext, data: EventFile, pause_s: float = 20.0, down_s: float = 10.0, stagger_s: float = 5.0
) -> ScenarioResult:
    """(c) Mid-drain, the broker is paused for ``pause_s`` (SIGSTOP, SIGCONT), crashed (SIGKILL) and restarted
    ``down_s`` later, and stopped cleanly and restarted ``down_s`` later.

    After the crash the next part arrives as producers' buffers do when a broker comes back, a partition at a
    time: its browse events at once, its searches and purchases ``stagger_s`` later. A worker that takes the
    then empty search and purchase partitions for caught up folds hours of browse events first and refuses
    the older searches and purchases as too late (seen by chance, 178 events in one full run, before the
    stagger made it certain)."""
    if ctx.broker is None:
        return ScenarioResult("broker", not_run="needs the suite's own broker (python -m bench.chaos)")
    chaos_broker = ctx.broker
    run = Run(ctx, "broker", data)
    try:
        parts = chunks(data.events, 3)
        run.send(parts[0])
        run.supervisor.start()

        run.progress()
        chaos_broker.send_signal(signal.SIGSTOP)
        run.fault(f"broker paused (SIGSTOP) for {pause_s:.0f} s")
        try:
            run.idle(pause_s)
        finally:
            chaos_broker.send_signal(signal.SIGCONT)
        run.send(parts[1])

        run.progress()
        chaos_broker.kill9()
        run.fault(f"broker killed (SIGKILL), restarted {down_s:.0f} s later")
        run.idle(down_s)
        chaos_broker.start()
        browse = [e for e in parts[2] if e.type == "browse"]
        run.send(browse)
        run.idle(stagger_s)
        run.send([e for e in parts[2] if e.type != "browse"])
        run.fault(f"after the restart, the part's searches and purchases sent {stagger_s:.0f} s after its browses")

        run.progress()
        chaos_broker.stop()
        run.fault(f"broker stopped (SIGTERM), restarted {down_s:.0f} s later")
        run.idle(down_s)
        chaos_broker.start()
        return run.finish(run.drain())
    finally:
        run.close()


def disk_full(ctx: ChaosContext, data: EventFile, full_s: float = 30.0) -> ScenarioResult:
    """(d) The state directory on a tmpfs of ``ctx.disk_mb``; mid-drain a filler file takes every free byte for
    ``full_s`` while more events arrive, then is deleted."""
    mount = ctx.workdir / "disk"
    try:
        with small_disk(mount, ctx.disk_mb) as disk:
            run = Run(ctx, "disk_full", data, state_dir=disk / "state")
            try:
                parts = chunks(data.events, 2)
                run.send(parts[0])
                run.supervisor.start()
                run.progress()
                filler, size = fill_disk(disk)
                run.fault(f"state disk ({ctx.disk_mb} MB tmpfs) filled mid-drain ({size // 2**20} MB filler)")
                run.send(parts[1])
                run.idle(full_s)
                filler.unlink()
                run.fault(f"filler deleted after {full_s:.0f} s")
                result = run.finish(run.drain())
            finally:
                run.close()
            # Proof that the fault reached the worker: a store write failed while the disk was full.
            felt = sum(_count_lines(log, "No space left on device") for log in run.supervisor.logs)
            seen = f"in {felt} lines" if felt else "nowhere"
            result.faults.append(f"the workers' logs report the full disk {seen}")
            return result
    except DiskUnavailableError as exc:
        ctx.log(f"[disk_full] NOT RUN: {exc}")
        return ScenarioResult("disk_full", not_run=str(exc))


def _count_lines(path: Path, text: str) -> int:
    try:
        return sum(text in line for line in path.read_text(errors="replace").splitlines())
    except FileNotFoundError:
        return 0


def _hours(events: Sequence[Event]) -> float:
    return (max(e.ts_ms for e in events) - min(e.ts_ms for e in events)) / 3_600_000


SCENARIOS: dict[str, Callable[[ChaosContext, EventFile], ScenarioResult]] = {
    "backlog": backlog,
    "kills": kills,
    "broker": broker,
    "disk_full": disk_full,
    "hostile": hostile,
}
"""Every scenario of ``make chaos``, in the order it runs them."""
