"""Reproducible input of the chaos suite: event files generated from a seed, and their interleaving with hostile
messages (the catalogue is in :mod:`bench.chaos.hostile`).

The files come from :class:`streams.demo.DemoTraffic` with a wide gap between events, so a few thousand events
span many hours of event time: during a backlog drain the three input topics can then race hours apart in event
time, which is what the lateness rule must survive. Each user's events are in event-time order in the file.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from streams.contract.events import Event, encode_event
from streams.offline.demo import DemoTraffic
from streams.offline.histories import ReadReport, read_events

T = TypeVar("T")


DAY_MS = 24 * 3_600_000


@dataclass(frozen=True)
class TrafficSpec:
    """What an event file holds: users, events, the generator's seed, its largest gap between events and the
    event time of its start. The same spec always gives the same file."""

    users: int
    events: int
    seed: int
    step_ms: int
    """Each event is 0 to ``step_ms`` after the previous one: the file spans about ``events * step_ms / 2``."""
    start_ms: int = 0
    """Event time the file starts at; see :meth:`anchored`."""

    def anchored(self, now_ms: int) -> TrafficSpec:
        """This spec starting at midnight UTC two days before ``now_ms``: recent enough that a user of these
        files and a valid event of today live in the same event-time month (the worker expires users idle for a
        month of event time), early enough that the whole file lies before today (for a given day, one file)."""
        return replace(self, start_ms=(now_ms // DAY_MS - 2) * DAY_MS)

    @property
    def file_name(self) -> str:
        """A name that says what produced the file."""
        return f"events-s{self.seed}-u{self.users}-n{self.events}-g{self.step_ms}-t{self.start_ms}.jsonl"

    @property
    def span_hours(self) -> float:
        """Expected event-time span of the file in hours."""
        return self.events * self.step_ms / 2 / 3_600_000


FULL = TrafficSpec(users=2_000, events=30_000, seed=20_261_129, step_ms=5_000)
"""``make chaos``: about 21 hours of event time (anchor it with :meth:`TrafficSpec.anchored`)."""
SMALL = TrafficSpec(users=200, events=2_000, seed=11, step_ms=40_000)
"""The versions inside ``make test``: about 11 hours of event time."""


@dataclass(frozen=True)
class EventFile:
    """A written event file, its digest (proof of reproducibility) and its events in file order."""

    path: Path
    sha256: str
    events: list[Event]


def write_event_file(spec: TrafficSpec, directory: Path) -> EventFile:
    """Write the spec's events as contract-v1 JSON lines (the format of ``profilestream demo-events``) and read
    them back through the one decoder, so the suite runs on exactly what the file says."""
    if spec.start_ms <= 0:
        raise ValueError("anchor the traffic spec in time first (TrafficSpec.anchored)")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.file_name
    traffic = DemoTraffic(spec.users, seed=spec.seed, start_ms=spec.start_ms, step_ms=spec.step_ms)
    data = b"".join(encode_event(event) + b"\n" for event in traffic.events(spec.events))
    path.write_bytes(data)
    report = ReadReport()
    events = list(read_events(path, report))
    if report.bad_lines or len(events) != spec.events:
        raise RuntimeError(f"the generated event file does not read back cleanly: {report.summary()}")
    return EventFile(path, hashlib.sha256(data).hexdigest(), events)


def chunks(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` cut into ``parts`` consecutive pieces of nearly equal length."""
    bounds = [round(i * len(items) / parts) for i in range(parts + 1)]
    return [list(items[a:b]) for a, b in itertools.pairwise(bounds)]


def interleave(events: Sequence[T], extras: Sequence[tuple[T, int]], seed: int) -> list[T]:
    """``events`` with each extra inserted at a seeded random position after its index (``-1``: anywhere), so a
    replay of an event always follows the event it replays."""
    rng = random.Random(seed)
    slots: dict[int, list[T]] = {}
    for extra, after in extras:
        position = rng.randint(after + 1, len(events))
        slots.setdefault(position, []).append(extra)
    out: list[T] = []
    for index in range(len(events) + 1):
        out.extend(slots.get(index, ()))
        if index < len(events):
            out.append(events[index])
    return out
