"""``python -m bench.chaos`` (``make chaos``): every chaos scenario against a broker of the suite's own, and the
results table in docs/reliability.md.

The broker runs on ports and a data directory of its own (default 127.0.0.1:29292, var/kafka-chaos), so tests,
benchmarks and ``make run`` on the same machine are never touched; it is wiped before and after. A run of only
some scenarios (``--scenario``) or of other sizes writes its table to var/chaos/RESULTS-partial.md instead, so
the document only ever shows the whole suite at its stated size.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.chaos.data import FULL, write_event_file
from bench.chaos.faults import ChaosBroker, KillableWorker, WorkerHandle
from bench.chaos.report import RunInfo, render, write_section
from bench.chaos.scenarios import SCENARIOS, ChaosContext, ScenarioResult
from bench.procs import REPO_ROOT, free_port, start_worker
from streams.client.admin import create_topics
from streams.client.producer import now_ms
from streams.settings import Settings, load_settings

DOC = REPO_ROOT / "docs" / "reliability.md"
WORKER_CODE = ("streams", "state", "models")
"""Where the code under test lives: uncommitted changes there are named next to the results."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of the suite."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="run only this (repeatable)")
    parser.add_argument("--users", type=int, default=FULL.users, help="users in the event file")
    parser.add_argument("--events", type=int, default=FULL.events, help="events in the event file")
    parser.add_argument("--seed", type=int, default=FULL.seed, help="seed of the event file and of the faults")
    parser.add_argument("--step-ms", type=int, default=FULL.step_ms, help="largest gap between two events")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CHAOS_KAFKA_PORT", "29292")))
    parser.add_argument(
        "--controller-port", type=int, default=int(os.environ.get("CHAOS_KAFKA_CONTROLLER_PORT", "29293"))
    )
    parser.add_argument("--kafka-data-dir", default=os.environ.get("CHAOS_KAFKA_DATA_DIR", "var/kafka-chaos"))
    parser.add_argument("--workdir", type=Path, default=Path("var/chaos"), help="event files, state and logs")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds a final drain may take")
    parser.add_argument("--disk-mb", type=int, default=256, help="size of the disk-full scenario's tmpfs")
    return parser


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


@dataclass(frozen=True)
class CodeState:
    """The code under test: the commit, and a digest of every file of the worker that differs from it."""

    commit: str
    dirty: dict[str, str]

    def changed_since(self, before: CodeState) -> tuple[str, ...]:
        """What changed between ``before`` and this state."""
        moved = (f"HEAD moved from {before.commit} to {self.commit}",) if self.commit != before.commit else ()
        names = sorted(n for n in set(self.dirty) | set(before.dirty) if self.dirty.get(n) != before.dirty.get(n))
        return moved + tuple(names)


def _worker_code() -> CodeState:
    commit = _git("rev-parse", "--short", "HEAD")
    if commit == "unknown":  # not a git checkout (an exported tree): nothing more to say
        return CodeState(commit, {})
    names = _git("diff", "--name-only", "HEAD", "--", *WORKER_CODE).splitlines()
    names += _git("ls-files", "--others", "--exclude-standard", "--", *WORKER_CODE).splitlines()
    dirty = {}
    for name in filter(None, names):
        path = REPO_ROOT / name
        dirty[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "deleted"
    return CodeState(commit, dirty)


def _spawn(workdir: Path) -> Callable[[Settings, str], WorkerHandle]:
    def spawn(settings: Settings, name: str) -> WorkerHandle:
        worker = start_worker("profilestream", settings, workdir / "logs" / f"{name}.log")
        return KillableWorker(worker.variant, worker.proc, worker.log_path)

    return spawn


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; prints the table and writes it (see the module docstring for where)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The broker scenario takes the broker away on purpose: the clients' reconnect warnings are expected noise.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    started = time.monotonic()
    started_utc = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    workdir = args.workdir if args.workdir.is_absolute() else REPO_ROOT / args.workdir
    run_dir = workdir / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")

    def log(message: str) -> None:
        print(f"[chaos {time.monotonic() - started:6.0f} s] {message}", flush=True)

    traffic = replace(FULL, users=args.users, events=args.events, seed=args.seed, step_ms=args.step_ms)
    traffic = traffic.anchored(now_ms())
    data = write_event_file(traffic, workdir / "data")
    log(f"event file {data.path.name}: {len(data.events)} events, sha256 {data.sha256[:16]}")
    broker = ChaosBroker(port=args.port, controller_port=args.controller_port, data_dir=args.kafka_data_dir)
    log(f"starting the suite's broker on port {args.port}")
    bootstrap = broker.start_fresh()

    def make_settings(**overrides: object) -> Settings:
        run = uuid.uuid4().hex[:8]
        (run_dir / run).mkdir(parents=True)  # faust creates the state directory, not its parents
        values: dict[str, object] = {
            "kafka_bootstrap": bootstrap,
            "topic_prefix": f"chaos-{run}.",
            "app_id": f"ps-chaos-{run}",
            "state_dir": run_dir / run / "state",
            "metrics_port": 0,
            "web_port": free_port(),
            "model_failure_linger_s": 0.0,
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        create_topics(settings)
        return settings

    ctx = ChaosContext(
        make_settings=make_settings,
        spawn=_spawn(run_dir),
        workdir=run_dir,
        log=log,
        drain_timeout_s=args.drain_timeout,
        broker=broker,
        disk_mb=args.disk_mb,
        seed=args.seed,
    )
    code_before = _worker_code()
    names = args.scenario or list(SCENARIOS)
    results: list[ScenarioResult] = []
    try:
        for name in names:
            log(f"scenario {name}")
            results.append(SCENARIOS[name](ctx, data))
    finally:
        broker.stop_and_wipe()

    changed = _worker_code().changed_since(code_before)
    if changed:
        log(f"WARNING: the code under test changed during the run: {', '.join(changed)}")
    info = RunInfo(
        command=shlex.join(["python", "-m", "bench.chaos", *(argv if argv is not None else sys.argv[1:])]),
        started_utc=started_utc,
        commit=code_before.commit,
        dirty=tuple(sorted(code_before.dirty)),
        changed_during_run=changed,
        data=(
            f"{traffic.users:,} users, {traffic.events:,} events over {traffic.span_hours:.0f} h of event time "
            f"(seed {traffic.seed}, gap up to {traffic.step_ms} ms, sha256 `{data.sha256[:16]}`)"
        ),
        settings=make_settings_summary(bootstrap),
        machine=f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
    )
    section = render(results, info)
    print()
    print(section)
    whole = names == list(SCENARIOS) and replace(traffic, start_ms=0) == FULL
    target = DOC if whole else workdir / "RESULTS-partial.md"
    write_section(target, section)
    log(f"results written to {target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target}")
    return 0 if all(r.passed for r in results) else 1


def make_settings_summary(bootstrap: str) -> str:
    """The worker settings that shape the results, as the runs used them (defaults unless PROFILESTREAM_* says)."""
    s = load_settings(kafka_bootstrap=bootstrap)
    return (
        f"{s.partitions} partitions, units of up to {s.batch_max_events} events, "
        f"allowed lateness {s.allowed_lateness_ms // 60_000} min, "
        + ("a trained checkpoint" if s.model_dir else f"the untrained encoder of {s.embedding_dim} dimensions")
    )


if __name__ == "__main__":
    sys.exit(main())
