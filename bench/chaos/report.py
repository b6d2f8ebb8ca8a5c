"""The results of a chaos run as Markdown, and their place in docs/reliability.md (between two markers, so the
prose around them stays as written)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.scenarios import ScenarioResult

BEGIN = "<!-- chaos-results:begin (written by python -m bench.chaos; edit outside these markers) -->"
END = "<!-- chaos-results:end -->"


@dataclass(frozen=True)
class RunInfo:
    """What the table was measured on."""

    command: str
    started_utc: str
    commit: str
    dirty: tuple[str, ...]
    """Files of the worker (streams/, state/, models/) that differed from the commit when the run started."""
    changed_during_run: tuple[str, ...]
    """What of the code under test changed while the run went on (other people's edits)."""
    data: str
    """The event file: spec and digest."""
    settings: str
    machine: str


def _reasons(counter: Counter[str]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _row(r: ScenarioResult) -> str:
    if r.not_run:
        return f"| {r.name} | **NOT RUN: {r.not_run}** | | | | | | | | | | |"
    v, d, h = r.valid, r.dead, r.hostile
    other_valid = sum(d.valid_by_reason.values()) - d.too_late
    hostile = f"{h.met}/{h.sent} ({h.kinds} kinds)" if h.sent else "-"
    exits = ", ".join(str(c) for c in r.worker_exits) or "none"
    verdict = "pass" if r.passed else "**FAIL**"
    return (
        f"| {r.name} | {verdict} | {v.events:,} | {v.users:,} | {v.lost:,} | {v.duplicated:,} | {v.wrong:,} "
        f"| {d.too_late:,} | {other_valid:,} | {hostile} | {r.worker_kills} / {exits} "
        f"| {'yes' if r.finished else f'**no** ({r.drain_s:.0f} s)'} / {r.wall_s:.0f} s |"
    )


def _details(r: ScenarioResult) -> list[str]:
    if r.not_run:
        return [f"- **{r.name}**: not run: {r.not_run}"]
    lines = [f"- **{r.name}**: " + "; ".join(r.faults) + "."]
    d = r.dead
    for reason, count in sorted(d.valid_by_reason.items()):
        topics = ", ".join(f"{t} {n}" for (r, t), n in sorted(d.valid_by_topic.items()) if r == reason)
        lines.append(f"  - valid events dead-lettered as {reason}: {count} (by input topic: {topics})")
    if d.hostile_by_reason:
        lines.append(f"  - hostile dead letters by reason: {_reasons(d.hostile_by_reason)}")
    extras = []
    if d.repeated:
        extras.append(f"{d.repeated} repeated dead letters")
    if d.unknown_source:
        extras.append(f"{d.unknown_source} dead letters of unknown source")
    if r.version_repeats:
        extras.append(f"{r.version_repeats} profiles published again with the same version")
    if r.version_regressions:
        extras.append(f"{r.version_regressions} profiles with a version below the user's last")
    if r.tombstones:
        extras.append(f"{r.tombstones} tombstones")
    extras.append(f"worst embedding difference {r.valid.worst_embedding_diff:.1e}")
    lines.append("  - " + "; ".join(extras))
    lines += [f"  - {p}" for p in r.problems()]
    lines += [f"  - reason differs from the contract's: {o}" for o in r.hostile.other_reason]
    return lines


def render(results: Sequence[ScenarioResult], info: RunInfo) -> str:
    """The results section: how it was made, the table, and the details under it."""
    dirty = (
        f" with uncommitted changes to {', '.join(f'`{f}`' for f in info.dirty)}"
        if info.dirty
        else " (no uncommitted changes to the worker)"
    )
    changed = (
        f" **Changed during the run: {', '.join(f'`{c}`' for c in info.changed_during_run)}.**"
        if info.changed_during_run
        else ""
    )
    out = [
        f"Measured {info.started_utc} UTC on commit `{info.commit}`{dirty}, with `{info.command}`.{changed}",
        "",
        f"Events: {info.data}. Worker settings: {info.settings}. Machine: {info.machine}.",
        "",
        "| scenario | verdict | valid events | users | lost | duplicated | wrong users | too_late dead letters "
        "| other valid dead letters | hostile met/sent | kills / exits | drained / wall |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
        *(_row(r) for r in results),
        "",
    ]
    for r in results:
        out += _details(r)
    return "\n".join(out) + "\n"


def write_section(doc: Path, section: str) -> None:
    """Put ``section`` between the markers of ``doc`` (appended with markers when they are missing)."""
    text = doc.read_text() if doc.exists() else ""
    block = f"{BEGIN}\n{section}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    doc.write_text(text)
