"""The report's CPU-profile section and what it names in the way of the targets (no Kafka client needed)."""

from __future__ import annotations

from bench.markdown import num, pct, table
from bench.pyspy import ProfileSummary
from bench.suite_config import SuiteConfig


def profile_section(
    drain: ProfileSummary, live: ProfileSummary | None, config: SuiteConfig, max_rate_per_s: float
) -> list[str]:
    """The drain's profile and, beside it, the one under live traffic: parts and top functions."""
    if drain.samples == 0:
        return []
    out = [
        "## CPU profile of the worker under load",
        "",
        f"py-spy, {drain.samples:,} samples of every thread of a profilestream worker draining the throughput "
        f"backlog (for {config.profile_s:.0f} s from its first profile, or until the backlog is done)",
    ]
    has_live = live is not None and live.samples > 0
    if live is not None and has_live:
        rate = config.live_profile_fraction * max_rate_per_s
        out[-1] += (
            f"; beside it {live.samples:,} samples of a fresh worker under live traffic, a paced load of "
            f"{pct(config.live_profile_fraction)} of the drain maximum ({num(rate)} events/s over "
            f"{config.drain_users:,} users, so nearly one event per user in a unit of work: the freshness target's "
            f"load), for {max(config.paced_s - 1, 1):.0f} s of its {config.paced_s:.0f} s phase after a "
            f"{config.warmup_s:.0f} s warm-up (the last second, with the queue left and the stop, not sampled)"
        )
    out[-1] += ". Share of samples in each part (parts nest: the first row holds most of the others):"
    out.append("")
    if live is not None and has_live:
        live_share = {s.name: s.share for s in live.parts}
        header = ["part", "draining the backlog", f"live traffic at {pct(config.live_profile_fraction)}"]
        out += table(header, [[s.name, pct(s.share), pct(live_share.get(s.name, 0.0))] for s in drain.parts])
    else:
        out += table(["part", "share"], [[s.name, pct(s.share)] for s in drain.parts])
    out += ["Top functions by own time, draining the backlog:", ""]
    out += table(["function", "self"], [[f"`{s.name}`", pct(s.share)] for s in drain.top_self])
    if live is not None and has_live:
        out += ["Top functions by own time, live traffic:", ""]
        out += table(["function", "self"], [[f"`{s.name}`", pct(s.share)] for s in live.top_self])
    return out


def in_the_way(drain: ProfileSummary | None, live: ProfileSummary | None, live_fraction: float) -> list[str]:
    """What each profile shows in the way: of the throughput (the drain's), of freshness (the live one's)."""
    out: list[str] = []
    if drain is not None and drain.parts:
        out += [f"What the profile shows in the way of the throughput: {biggest_parts(drain)}.", ""]
    if live is not None and live.parts:
        out += [
            f"What the profile under live traffic ({pct(live_fraction)} of the drain maximum) shows in the way of "
            f"freshness: {biggest_parts(live)}.",
            "",
        ]
    return out


def biggest_parts(summary: ProfileSummary, count: int = 4) -> str:
    """The ``count`` largest named parts after the first (which holds most of the others), largest first."""
    biggest = sorted(summary.parts[1:], key=lambda s: s.share, reverse=True)[:count]
    return "; ".join(f"{s.name} {pct(s.share)}" for s in biggest)
