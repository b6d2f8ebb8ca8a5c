"""The results as Markdown: printed by ``python -m bench`` and written to bench/RESULTS.md by the same run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from bench.freshness import SETTLE_MS, settled_p99
from bench.live_search import P99_TARGET_MS, median_maximum, run_maximum
from bench.machine import Machine
from bench.markdown import num as _num
from bench.markdown import pct as _pct
from bench.markdown import table as _table
from bench.markdown import times as _times
from bench.procs import Variant
from bench.profile_report import in_the_way, profile_section
from bench.runs import MULTI_PROCESS_SETTLE_S, DrainResult
from bench.speed_probe import speed_line
from bench.stats import LatencySummary, median, median_summary, ratio
from bench.suite import SIDE_BY_SIDE_UNIT_EVENTS, WINDOW, SuiteResults, trial_of
from streams.settings import Settings, load_settings

MIB = 1024 * 1024
STATE_GOAL_BYTES = 2048
THROUGHPUT_TARGET, THROUGHPUT_GOAL = 10_000, 50_000
P99_GOAL_MS = 25.0
ENCODER_SHARE_TARGET = 0.20
NAIVE_RATIO_TARGET = 10.0

LABELS: dict[Variant, str] = {
    "profilestream": "(a) profilestream",
    "naive": "(b) naive: window re-encoded per event",
    "quix": "(c) Quix Streams peer",
    "floor": "framework floor",
    "limit": "Python limit",
    "baseline": "profilestream at an earlier commit",
}
BASELINE_RATIO_TARGET = 3.0
"""One worker at least this many times the worker before the batch delivery, in the same run (issue 13)."""
SCALE_OUT_TARGET = 1.7
"""Two worker processes at least this many times one (issue 13)."""


def _med(runs: Sequence[DrainResult], field: str) -> float:
    values = [getattr(r, field) for r in runs if getattr(r, field) is not None]
    return median(values) if values else math.nan


def render(
    results: SuiteResults,
    machine: Machine,
    command: str,
    when: datetime | None = None,
    settings: Settings | None = None,
) -> str:
    """The whole report; ``settings`` are the workers' (default: the defaults)."""
    worker = settings or load_settings()
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    cfg = results.config
    out = [
        "# profilestream benchmark results",
        "",
        "Written by the command below; do not edit by hand (run it again instead).",
        "",
        f"- Date: {stamp}",
        f"- Command: `{command}`, on commit `{machine.commit}`",
        f"- Machine: {machine.cpu}, {machine.cores} cores, {machine.memory_gib:.0f} GiB, {machine.system}",
        f"- Load average when the suite started: {', '.join(f'{x:.2f}' for x in machine.load_average)}"
        " (other work on the machine makes timings noisy)",
        "- Machine speed through the suite (bench/speed_probe.py: the worker's processor folding the same 5,000 "
        f"events in memory before each section): "
        f"{speed_line(results.speed)}",
        f"- Software: Python {machine.python}, " + ", ".join(f"{k} {v}" for k, v in machine.versions.items()),
        f"- Figures are medians of {cfg.runs} run(s) (the CPU profile and the state size are one run each: a sample "
        f"and a deterministic count; Quix Streams, the slow peer, {min(cfg.reference_runs, cfg.runs)} run(s)); "
        f"the suite took {results.seconds / 60:.1f} minutes.",
        "- Broker: the local Kafka of deploy/local (one broker, KRaft) on the same machine; one worker process, "
        f"{worker.partitions} partitions, batch_max_events {worker.batch_max_events}, "
        f"state_cache_users {worker.state_cache_users:,}, {worker.torch_threads} torch "
        f"thread(s), untrained encoder ({worker.embedding_dim} dimensions).",
        "",
    ]
    out += _throughput(results)
    out += _freshness(results)
    out += _cost(results)
    out += _side_by_side(results)
    out += _profile(results)
    out += _state_size(results)
    out += _targets(results)
    return "\n".join(out).rstrip() + "\n"


def _throughput(results: SuiteResults) -> list[str]:
    runs, data = results.drains, results.drain_dataset
    if not runs or data is None:
        return []
    spec = data.schedule.spec
    out = [
        "## Throughput",
        "",
        f"A fresh worker drains a pre-loaded backlog of {data.events:,} events over {data.users:,} users "
        f"(Zipf-like users, exponent {spec.user_skew}; items exponent {spec.item_skew}; "
        f"{', '.join(f'{share:.0%}' for share in spec.type_mix)} browse/search/purchase). Events per second from "
        "the worker's first fetch (faust's \"Ready\" line) to the last profile published, every event counted "
        "(decoding the first poll included); CPU of the worker process (all threads) per 1,000 events over the "
        "same span; "
        "the encoder's share is its time over the worker's CPU time, both from the first profile (the encoder's "
        "time is read from the worker's metrics, which answer from then); re-folded GRU steps are the share of the "
        "encoder's steps spent folding a window again because an event arrived after a later one of its user.",
        "",
    ]
    header = [
        "run",
        "events/s",
        "CPU s / 1k events",
        "encoder share of CPU",
        "events per micro-batch",
        "re-folded GRU steps",
        "profiles",
        "dead letters",
    ]
    rows = [
        [
            str(i + 1),
            _num(r.events_per_s),
            _num(r.cpu_s_per_1k, 3),
            _pct(r.encoder_cpu_share),
            _num(r.mean_batch_events),
            _pct(r.refold_share),
            f"{r.profiles:,}",
            str(r.dead_letters),
        ]
        for i, r in enumerate(runs)
    ]
    rows.append(
        [
            "**median**",
            f"**{_num(_med(runs, 'events_per_s'))}**",
            _num(_med(runs, "cpu_s_per_1k"), 3),
            _pct(_med(runs, "encoder_cpu_share")),
            _num(_med(runs, "mean_batch_events")),
            _pct(_med(runs, "refold_share")),
            _num(_med(runs, "profiles")),
            _num(_med(runs, "dead_letters")),
        ]
    )
    return out + _table(header, rows) + _floor(results)


def _floor(results: SuiteResults) -> list[str]:
    floor, runs, limit = results.floor, results.drains, results.limit
    if not floor or not runs:
        return []
    rate, floor_rate = _med(runs, "events_per_s"), _med(floor, "events_per_s")
    cpu, floor_cpu = _med(runs, "cpu_s_per_1k"), _med(floor, "cpu_s_per_1k")
    rows = []
    if limit:
        limit_rate, limit_cpu = _med(limit, "events_per_s"), _med(limit, "cpu_s_per_1k")
        rows.append(["Python limit (no framework)", _num(limit_rate), _num(limit_cpu, 3), "1.00x"])
    else:
        limit_rate = math.nan
    rows += [
        ["framework floor", _num(floor_rate), _num(floor_cpu, 3), _times(ratio(floor_rate, limit_rate))],
        ["profilestream", _num(rate), _num(cpu, 3), _times(ratio(rate, limit_rate))],
        ["profilestream ÷ floor", _times(ratio(rate, floor_rate)), _times(ratio(cpu, floor_cpu)), ""],
    ]
    if results.baseline:
        before, before_cpu = _med(results.baseline, "events_per_s"), _med(results.baseline, "cpu_s_per_1k")
        rows += [
            [
                f"profilestream at `{results.baseline_commit}` (before)",
                _num(before),
                _num(before_cpu, 3),
                _times(ratio(before, limit_rate)),
            ],
            ["profilestream ÷ before", _times(ratio(rate, before)), _times(ratio(cpu, before_cpu)), ""],
        ]
    return [
        "The same backlog in the same runs, beside two references: the framework floor, the same worker app "
        "(Faust app and consumer, batch delivery, alignment, units of work, bulk publishing) with a processor that "
        "only decodes the events and publishes each user's counters, no state, no encoder (bench/floor_worker.py); "
        "and the Python limit, a bare aiokafka loop that consumes, decodes with the same decoder and produces one "
        "record per event, committing after each poll, no framework at all (bench/python_limit.py; it writes no "
        '"Ready" line and decodes message by message, so it is timed from its first profile):',
        "",
        *_table(["worker", "events/s", "CPU s / 1k events", "÷ Python limit"], rows),
        *_scale_out(results),
    ]


def _scale_out(results: SuiteResults) -> list[str]:
    one, two = results.drains, results.two_processes
    if not one or not two:
        return []
    rate1, rate2 = _med(one, "events_per_s"), _med(two, "events_per_s")
    cpu1, cpu2 = _med(one, "cpu_s_per_1k"), _med(two, "cpu_s_per_1k")
    return [
        "Scale-out, in the same runs: two worker processes of one consumer group (each owns half of the "
        'partitions) drain the same backlog, timed from the later of their "Ready" lines, every event folded '
        "since counted (one that is ready first drains alone until the rebalance that lets the other in; both run "
        f"with a rebalance settle time of {MULTI_PROCESS_SETTLE_S:g} s, `rebalance_settle_s`, so that the second "
        "usually joins before either starts). CPU counts both processes over the same span. The broker and the "
        "benchmark's own consumer share the same two cores.",
        "",
        *_table(
            ["worker processes", "events/s", "CPU s / 1k events", "÷ one process"],
            [
                ["1", _num(rate1), _num(cpu1, 3), "1.00x"],
                ["2", _num(rate2), _num(cpu2, 3), _times(ratio(rate2, rate1))],
            ],
        ),
    ]


def live_maximum(results: SuiteResults) -> float | None:
    """The median over runs of each run's highest load, fixed or refined, whose p99 stayed under the target
    (bench.live_search.median_maximum; None: no run had one)."""
    refined = results.live_refined or [[] for _ in results.freshness]
    runs = zip(results.freshness, refined, strict=True)
    return median_maximum([run_maximum([trial_of(r) for r in [*fixed, *extra]]) for fixed, extra in runs])


def fixed_live_maximum(results: SuiteResults) -> float | None:
    """The highest fixed load whose median p99 stayed under the target (the figure before the refinement)."""
    best: float | None = None
    for i in range(len(results.freshness[0]) if results.freshness else 0):
        phase_runs = [run[i] for run in results.freshness]
        if median([r.latency.p99_ms for r in phase_runs]) < P99_TARGET_MS:
            rate = median([r.achieved_per_s for r in phase_runs])
            best = rate if best is None else max(best, rate)
    return best


def _live_refinement(results: SuiteResults) -> list[str]:
    """The loads each run offered between the fixed ones (bench.live_search), a row each."""
    rows = [
        [
            str(run + 1),
            r.phase.label,
            _num(r.achieved_per_s),
            _num(r.latency.p50_ms),
            _num(r.latency.p99_ms),
            "yes" if trial_of(r).met(P99_TARGET_MS) else "no",
        ]
        for run, extra in enumerate(results.live_refined)
        for r in extra
    ]
    if not rows:
        return []
    return [
        f"Between the fixed loads, in the same runs and workers: up to {results.config.live_refine_steps} loads "
        f"halfway between the highest that met p99 < {P99_TARGET_MS:.0f} ms and the lowest above it that did not "
        "(bench/live_search.py):",
        "",
        *_table(["run", "load", "offered events/s", "p50 ms", "p99 ms", f"p99 < {P99_TARGET_MS:.0f} ms"], rows),
    ]


def _freshness_beside_baseline(results: SuiteResults) -> list[str]:
    """The same paced loads with the worker of ``--baseline``, as ratios (empty without a baseline)."""
    if not results.baseline_freshness:
        return []
    header = ["load", "p50 ms now / before", "p99 ms now / before", "p99 now ÷ before"]
    rows = []
    for i, first in enumerate(results.freshness[0]):
        now = median_summary([run[i].latency for run in results.freshness])
        before = median_summary([run[i].latency for run in results.baseline_freshness])
        rows.append(
            [
                first.phase.label,
                f"{_num(now.p50_ms)} / {_num(before.p50_ms)}",
                f"{_num(now.p99_ms)} / {_num(before.p99_ms)}",
                f"{ratio(now.p99_ms, before.p99_ms):.2f}",
            ]
        )
    return [
        f"The same loads, same runs, with the worker at `{results.baseline_commit}` (before):",
        "",
        *_table(header, rows),
    ]


def _two_process_live(results: SuiteResults) -> list[str]:
    """One worker and two worker processes of one group under the same paced load, in the same runs."""
    fraction = results.config.two_process_fraction
    if not results.two_process_live or fraction is None or fraction not in results.config.load_fractions:
        return []
    i = results.config.load_fractions.index(fraction)
    one = [run[i] for run in results.freshness]
    two = results.two_process_live
    header = ["worker processes", "load", "offered events/s", "p50 ms", "p99 ms", "uncovered"]
    rows = []
    for count, runs in ((1, one), (2, two)):
        summary = median_summary([r.latency for r in runs])
        rows.append(
            [
                str(count),
                runs[0].phase.label,
                _num(median([r.achieved_per_s for r in runs])),
                _num(summary.p50_ms),
                _num(summary.p99_ms),
                str(max(r.missing for r in runs)),
            ]
        )
    p99_one = median_summary([r.latency for r in one]).p99_ms
    p99_two = median_summary([r.latency for r in two]).p99_ms
    return [
        f"Live traffic spread over two worker processes of one group (each owns half of the partitions), both "
        f"started together under the warm-up load and measured once their group was stable with both "
        f"({len(two)} run(s)), beside one process at the same load "
        f"(the median of the freshness runs) "
        f"(p99 two ÷ one: {ratio(p99_two, p99_one):.2f}):",
        "",
        *_table(header, rows),
    ]


def _freshness(results: SuiteResults) -> list[str]:
    if not results.freshness:
        return []
    out = [
        "## Freshness",
        "",
        f"Paced load at fractions of the measured maximum ({_num(results.max_rate_per_s)} events/s), "
        f"{results.config.paced_s:.0f} s each, one worker per run after a warm-up. Latency of every event: from "
        "its event time (the wall clock when it was sent) to the moment a consumer read the first profile that "
        "includes it. \"made\" is the worker's part: event time to the profile's `updated_at`; the rest is "
        'publishing, the broker and the consumer. Each load starts at once at its rate; "p99 settled" leaves out '
        f"the events sent in its first {SETTLE_MS / 1000:.0f} s, where the step up from the previous load shows "
        "(the other columns, and the targets, count every event).",
        "",
    ]
    header = [
        "load", "offered events/s", "events measured", "p50 ms", "p95 ms", "p99 ms", "max ms",
        "p99 settled ms", "made p50 / p99 ms", "uncovered",
    ]  # fmt: skip
    rows = []
    for i, first in enumerate(results.freshness[0]):
        phase_runs = [run[i] for run in results.freshness]
        summary: LatencySummary = median_summary([r.latency for r in phase_runs])
        made = median_summary([r.made for r in phase_runs])
        rows.append(
            [
                first.phase.label,
                _num(median([r.achieved_per_s for r in phase_runs])),
                f"{summary.count:,}",
                _num(summary.p50_ms),
                _num(summary.p95_ms),
                _num(summary.p99_ms),
                _num(summary.max_ms),
                _num(settled_p99([r.settled for r in phase_runs])),
                f"{_num(made.p50_ms)} / {_num(made.p99_ms)}",
                str(max(r.missing for r in phase_runs)),
            ]
        )
    best, fixed = live_maximum(results), fixed_live_maximum(results)
    shown = "none of the loads" if best is None else f"{_num(best)} events/s"
    out += _table(header, rows)
    out += _freshness_beside_baseline(results)
    out += _two_process_live(results)
    refinement = _live_refinement(results)
    out += refinement
    fixed_shown = (
        ""
        if fixed is None
        else f"; the fixed loads alone, as reported before (the highest whose median p99 met "
        f"it), give {_num(fixed)} events/s"
    )
    return [
        *out,
        f"Live-traffic maximum (each run's highest load whose p99 stayed under {P99_TARGET_MS:.0f} ms, the median "
        f"over runs, a run without one counting as 0): {shown}{fixed_shown}. "
        f"The load spreads over {_num(float(results.drain_dataset.users)) if results.drain_dataset else 'n/a'} "
        "users, so nearly every user in a unit of work has one event: the expensive case, one GRU step and one "
        "state record per event.",
        "",
    ]


def _cost(results: SuiteResults) -> list[str]:
    runs = results.drains
    if not runs:
        return []
    out = ["## Cost", "", "Medians of the throughput runs.", ""]
    rows = [
        ["peak RSS of the worker", f"{_num(_med(runs, 'peak_rss_bytes') / MIB)} MiB"],
        [
            "RocksDB bytes per user (every file of the state directory after the worker stopped)",
            _num(_med(runs, "state_bytes_per_user")),
        ],
        ["encoded record bytes per user (mean value size)", _num(_med(runs, "state_value_bytes_per_user"))],
        ["profile-topic bytes per update (key + value)", _num(_med(runs, "profile_bytes_per_update"))],
    ]
    return out + _table(["what", "value"], rows)


def _side_by_side(results: SuiteResults) -> list[str]:
    by_variant, data = results.side_by_side, results.window_dataset
    if not by_variant or data is None:
        return []
    rounds = data.events // data.schedule.spec.users
    out = [
        "## Side by side",
        "",
        f"The same broker and data for all three: {data.schedule.spec.users:,} users, one event each per round, "
        f"{rounds} rounds ({data.events:,} events, pre-loaded); (a) and (b) run units of up to "
        f"{SIDE_BY_SIDE_UNIT_EVENTS:,} events. The rate counts only the rounds after the first "
        f"{WINDOW}, where every event meets a full {WINDOW}-event window. (b) is profilestream's worker with its "
        "encoder call replaced by a re-encode of the user's window for every event, one user at a time "
        "(bench/naive.py); "
        "(c) is the same job on Quix Streams as its documentation teaches (bench/peers/quix_profiles.py), one "
        "message at a time. Ratios are the variant's figure divided by (a)'s.",
        "",
    ]
    base = by_variant.get("profilestream", [])
    base_rate, base_cpu, base_rss = (_med(base, f) for f in ("events_per_s", "cpu_s_per_1k", "peak_rss_bytes"))
    base_state = _med(base, "state_bytes_per_user")
    header = [
        "variant", "events/s", "÷ (a)", "CPU s / 1k events", "÷ (a)", "encoder share", "peak RSS MiB", "÷ (a)",
        "state bytes / user", "profile bytes / update",
    ]  # fmt: skip
    rows = []
    for variant, runs in by_variant.items():
        rate, cpu, rss = (_med(runs, f) for f in ("events_per_s", "cpu_s_per_1k", "peak_rss_bytes"))
        state = _med(runs, "state_bytes_per_user")
        rows.append(
            [
                LABELS[variant],
                _num(rate),
                _times(ratio(rate, base_rate)),
                _num(cpu, 3),
                _times(ratio(cpu, base_cpu)),
                _pct(_med(runs, "encoder_cpu_share")),
                _num(rss / MIB),
                _times(ratio(rss, base_rss)),
                f"{_num(state)} ({_times(ratio(state, base_state))})",
                _num(_med(runs, "profile_bytes_per_update")),
            ]
        )
    return out + _table(header, rows)


def _profile(results: SuiteResults) -> list[str]:
    if results.profile is None:
        return []
    return profile_section(results.profile, results.live_profile, results.config, results.max_rate_per_s)


def _state_size(results: SuiteResults) -> list[str]:
    size = results.state_size
    if size is None:
        return []
    flushed, compacted = size.flushed, size.compacted
    verdict = "within" if compacted.sst_bytes_per_user <= STATE_GOAL_BYTES else "over"
    out = [
        "## State size at defaults (issue 4)",
        "",
        f"{size.users:,} users with {size.events_per_user} events each (about an hour apart in event time), folded "
        "by the worker's own BatchProcessor into RocksDB databases opened with faust's options and profilestream's "
        f"table options (4 partitions), in {size.seconds:.0f} s. Goal: at most {STATE_GOAL_BYTES:,} bytes per user: "
        f"**{_num(compacted.sst_bytes_per_user)} bytes per user, {verdict} the goal**.",
        "",
    ]
    rows = [
        ["encoded record (mean value size)", _num(flushed.value_bytes_per_user), _num(compacted.value_bytes_per_user)],
        ["SST files", _num(flushed.sst_bytes_per_user), _num(compacted.sst_bytes_per_user)],
        ["every file of the databases", _num(flushed.bytes_per_user), _num(compacted.bytes_per_user)],
    ]
    out += _table(["bytes per user", "flushed", "after a full compaction"], rows)
    full = size.full_window_record_bytes
    out += [
        f"A user whose recent window is full ({results.config.state_events_per_user} events is less than the "
        f"window) has a bigger record: **{full:,} bytes** encoded, "
        f"{'within' if full <= STATE_GOAL_BYTES else 'over'} the goal; the window's events are most of it.",
        "",
    ]
    return out


def _targets(results: SuiteResults) -> list[str]:
    rows: list[list[str]] = []

    def verdict(ok: bool, shortfall: str) -> str:
        return "met" if ok else f"**missed** ({shortfall})"

    if results.drains:
        rate = _med(results.drains, "events_per_s")
        rows.append(
            [
                f"throughput >= {THROUGHPUT_TARGET:,} events/s (goal {THROUGHPUT_GOAL:,})",
                _num(rate),
                verdict(rate >= THROUGHPUT_TARGET, f"{_times(ratio(THROUGHPUT_TARGET, rate))} short"),
            ]
        )
        if results.baseline:
            gain = ratio(rate, _med(results.baseline, "events_per_s"))
            rows.append(
                [
                    f"one worker >= {BASELINE_RATIO_TARGET:.0f}x the worker at `{results.baseline_commit}`, same run",
                    _times(gain),
                    verdict(gain >= BASELINE_RATIO_TARGET, f"{_times(ratio(BASELINE_RATIO_TARGET, gain))} short"),
                ]
            )
        if results.two_processes:
            scale = ratio(_med(results.two_processes, "events_per_s"), rate)
            rows.append(
                [
                    f"two worker processes >= {SCALE_OUT_TARGET:.1f}x one",
                    _times(scale),
                    verdict(scale >= SCALE_OUT_TARGET, f"{_times(ratio(SCALE_OUT_TARGET, scale))} short"),
                ]
            )
        share = _med(results.drains, "encoder_cpu_share")
        rows.append(
            [
                f"encoder share of worker CPU < {ENCODER_SHARE_TARGET:.0%} at the maximum load",
                _pct(share),
                verdict(not math.isnan(share) and share < ENCODER_SHARE_TARGET, "over"),
            ]
        )
    if results.freshness:
        fractions = list(results.config.load_fractions)
        if 0.5 in fractions:
            i = fractions.index(0.5)
            p99 = median([run[i].latency.p99_ms for run in results.freshness])
            rows.append(
                [
                    f"p99 freshness at 50% load < {P99_TARGET_MS:.0f} ms (goal {P99_GOAL_MS:.0f} ms)",
                    f"{_num(p99)} ms",
                    verdict(p99 < P99_TARGET_MS, f"{_times(ratio(p99, P99_TARGET_MS))} over"),
                ]
            )
        best = live_maximum(results)
        rows.append(
            [
                f"live-traffic maximum at p99 < {P99_TARGET_MS:.0f} ms (reported)",
                "none of the loads" if best is None else f"{_num(best)} events/s",
                "reported",
            ]
        )
    sbs = results.side_by_side
    if "profilestream" in sbs:
        a = _med(sbs["profilestream"], "events_per_s")
        if "naive" in sbs:
            ab = ratio(a, _med(sbs["naive"], "events_per_s"))
            rows.append(
                [
                    f"(a) beats (b) by >= {NAIVE_RATIO_TARGET:.0f}x at a {WINDOW}-event window",
                    _times(ab),
                    verdict(ab >= NAIVE_RATIO_TARGET, f"{_times(ratio(NAIVE_RATIO_TARGET, ab))} short"),
                ]
            )
        if "quix" in sbs:
            ac = ratio(a, _med(sbs["quix"], "events_per_s"))
            rows.append(["(a) ahead of (c)", _times(ac), verdict(ac > 1.0, "behind")])
    if results.state_size is not None:
        per_user = results.state_size.compacted.sst_bytes_per_user
        rows.append(
            [
                f"state <= {STATE_GOAL_BYTES:,} bytes per user (issue 4)",
                _num(per_user),
                verdict(per_user <= STATE_GOAL_BYTES, "over"),
            ]
        )
    if not rows:
        return []
    out = ["## Targets (issues 6 and 13)", ""]
    out += _table(["target", "measured", "verdict"], rows)
    out += in_the_way(results.profile, results.live_profile, results.config.live_profile_fraction)
    if results.floor and results.drains:
        floor_rate, rate = _med(results.floor, "events_per_s"), _med(results.drains, "events_per_s")
        floor_us, own_us = 1e6 / floor_rate, 1e6 / rate - 1e6 / floor_rate
        budget_us = 1e6 / THROUGHPUT_TARGET - floor_us
        if budget_us < 1:
            reach = "nothing, so one worker process cannot reach it on this machine whatever its processing costs."
        else:
            reach = (
                f"{budget_us:.0f} µs per event for everything beyond it ({_times(own_us / budget_us)} less than now)."
            )
        out += [
            f"The framework floor (the same worker doing nothing but decode and publish) takes {floor_us:.0f} "
            f"µs per event here ({_num(floor_rate)} events/s); profilestream's own work adds {own_us:.0f} µs. "
            f"The throughput target leaves {reach} Beyond one process, throughput comes from more worker "
            "processes on more cores, each owning some of the partitions (the scale-out table).",
            "",
        ]
    return out
