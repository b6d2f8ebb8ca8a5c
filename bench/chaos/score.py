"""A run's outcome against the offline expectation, user by user and message by message.

Lost and duplicated are counted in events: a user whose final ``event_count`` is below the expected one lost the
difference (a user without a profile lost all of theirs), one above it had events applied twice. A user with the
right count whose newest event time, embedding (beyond ``EMBEDDING_TOLERANCE``) or aggregates differ is wrong:
the events were folded, but not as the contract says. Counts alone cannot see a loss and a duplicate of the same
user cancelling out; the embedding comparison does.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.chaos.expected import ExpectedProfile
from bench.chaos.hostile import Expect, Hostile
from bench.chaos.kafka_io import Coord, DeadLetterSeen
from streams.contract.profile import ProfileUpdated

EMBEDDING_TOLERANCE = 1e-5
"""DESIGN.md, invariant 4 (profiles travel with 7 decimals)."""
FLOAT_REL_TOLERANCE = 1e-6
"""Aggregate floats: decayed weights are printed with 7 significant digits, sums are exact."""
EXAMPLES = 8


@dataclass
class ValidTally:
    """The valid events: what reached every user's final profile."""

    users: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    users_missing: int = 0
    users_short: int = 0
    users_over: int = 0
    wrong_last_ts: int = 0
    wrong_embedding: int = 0
    wrong_aggregates: int = 0
    worst_embedding_diff: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def wrong(self) -> int:
        """Users with the right count but another profile."""
        return self.wrong_last_ts + self.wrong_embedding + self.wrong_aggregates


@dataclass
class HostileTally:
    """The hostile messages: did each meet its expectation."""

    sent: int = 0
    kinds: int = 0
    met: int = 0
    failures: list[str] = field(default_factory=list)
    """"<kind>: what happened instead", for every message that missed its expectation."""
    other_reason: list[str] = field(default_factory=list)
    """Dead-lettered, but with another reason than the contract implies (reported, not a failure)."""
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class DeadLetterTally:
    """The dead-letter topic, by the kind of message each record came from."""

    valid_by_reason: Counter[str] = field(default_factory=Counter)
    """Valid events dead-lettered: each is also missing from its user's profile."""
    valid_by_topic: Counter[tuple[str, str]] = field(default_factory=Counter)
    """The same by (reason, input topic type): which topic ran behind."""
    hostile_by_reason: Counter[str] = field(default_factory=Counter)
    without_reason: int = 0
    unknown_source: int = 0
    """Records whose source headers name no message the suite sent."""
    repeated: int = 0
    """Records for a message that already had one (a redelivery after a crash)."""

    @property
    def too_late(self) -> int:
        """Valid events dead-lettered as too late."""
        return self.valid_by_reason.get("too_late", 0)


def score_valid(
    expected: Mapping[str, ExpectedProfile],
    final: Mapping[str, ProfileUpdated],
    peak_count: Mapping[str, int] | None = None,
) -> ValidTally:
    """Compare every expected user with their final profile; ``peak_count`` (the highest count ever published per
    user) tells a stale last profile from events that never arrived, in the examples."""
    peaks = peak_count or {}
    tally = ValidTally(users=len(expected), events=sum(e.event_count for e in expected.values()))
    for user, want in sorted(expected.items()):
        have = final.get(user)
        if have is None:
            tally.users_missing += 1
            tally.lost += want.event_count
            _example(tally, f"{user}: no profile ({want.event_count} events)")
            continue
        if have.event_count != want.event_count:
            if have.event_count < want.event_count:
                tally.users_short += 1
                tally.lost += want.event_count - have.event_count
            else:
                tally.users_over += 1
                tally.duplicated += have.event_count - want.event_count
            peak = peaks.get(user, have.event_count)
            stale = f" (an earlier profile had {peak})" if peak != have.event_count else ""
            _example(tally, f"{user}: event_count {have.event_count}, expected {want.event_count}{stale}")
            continue
        if have.last_event_ts_ms != want.last_event_ts_ms:
            tally.wrong_last_ts += 1
            _example(tally, f"{user}: last_event_ts {have.last_event_ts_ms}, expected {want.last_event_ts_ms}")
        diff = float(np.max(np.abs(np.asarray(have.embedding, dtype=np.float64) - want.embedding)))
        tally.worst_embedding_diff = max(tally.worst_embedding_diff, diff)
        if not diff <= EMBEDDING_TOLERANCE:  # also NaN
            tally.wrong_embedding += 1
            _example(tally, f"{user}: embedding differs by {diff:.2e}")
        differing = aggregate_differences(want.aggregates, have.aggregates)
        if differing:
            tally.wrong_aggregates += 1
            _example(tally, f"{user}: aggregates differ in {', '.join(differing[:4])}")
    return tally


def _example(tally: ValidTally, text: str) -> None:
    if len(tally.examples) < EXAMPLES:
        tally.examples.append(text)


def aggregate_differences(want: Mapping[str, object], have: Mapping[str, object]) -> list[str]:
    """Names of the aggregates that differ (integers exactly, floats to ``FLOAT_REL_TOLERANCE``)."""
    names = sorted(set(want) | set(have))
    return [name for name in names if name not in want or name not in have or not _same(want[name], have[name])]


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        return math.isclose(a, b, rel_tol=FLOAT_REL_TOLERANCE, abs_tol=1e-9)
    return a == b


def score_dead_letters(
    letters: Sequence[DeadLetterSeen], valid: Mapping[Coord, str], hostile: Mapping[Coord, Hostile]
) -> tuple[DeadLetterTally, dict[Coord, list[DeadLetterSeen]]]:
    """Sort the dead-letter records by where their messages came from; also returns them by source."""
    tally = DeadLetterTally()
    by_source: dict[Coord, list[DeadLetterSeen]] = defaultdict(list)
    for letter in letters:
        reason = letter.reason or "(no reason)"
        if letter.reason is None:
            tally.without_reason += 1
        if letter.source is None or (letter.source not in valid and letter.source not in hostile):
            tally.unknown_source += 1
            continue
        if by_source[letter.source]:
            tally.repeated += 1
        else:
            counter = tally.valid_by_reason if letter.source in valid else tally.hostile_by_reason
            counter[reason] += 1
            if letter.source in valid:
                tally.valid_by_topic[(reason, letter.source[0].rsplit(".", 1)[-1])] += 1
        by_source[letter.source].append(letter)
    return tally, by_source


def score_hostile(
    hostile: Mapping[Coord, Hostile],
    letters: Mapping[Coord, list[DeadLetterSeen]],
    final: Mapping[str, ProfileUpdated],
) -> HostileTally:
    """Check every hostile message against its expectation."""
    tally = HostileTally(sent=len(hostile), kinds=len({h.kind for h in hostile.values()}))
    for coord, message in sorted(hostile.items(), key=lambda item: item[1].kind):
        seen = letters.get(coord, [])
        reason = seen[0].reason if seen else None
        if reason:
            tally.reasons[reason] += 1
        failure = _hostile_failure(message, seen, final)
        if failure is None:
            tally.met += 1
            if message.expect is Expect.DEAD_LETTER and message.reason and reason and reason != message.reason:
                tally.other_reason.append(f"{message.kind}: {reason} (the contract implies {message.reason})")
        else:
            tally.failures.append(f"{message.kind}: {failure}")
    return tally


def _hostile_failure(
    message: Hostile, seen: Sequence[DeadLetterSeen], final: Mapping[str, ProfileUpdated]
) -> str | None:
    """What went wrong with one hostile message, or None when it met its expectation."""
    if message.expect is Expect.NOT_TWICE:
        return None  # whether it was applied twice shows in its real user's count
    reason = seen[0].reason if seen else None
    if message.expect is Expect.DEAD_LETTER:
        if not seen:
            return "not in the dead-letter topic"
        return None if reason else "dead-lettered without a ps.reason header"
    folded = _folded(message, final)
    if message.expect is Expect.FOLD:
        if seen:
            return f"a valid event, dead-lettered ({reason})"
        return None if folded else "a valid event, neither folded nor dead-lettered"
    if seen:
        return None if reason else "dead-lettered without a ps.reason header"
    return None if folded else "neither folded nor dead-lettered"


def _folded(message: Hostile, final: Mapping[str, ProfileUpdated]) -> bool:
    assert message.fold is not None
    user, ts_ms = message.fold
    profile = final.get(user)
    return profile is not None and profile.event_count == 1 and profile.last_event_ts_ms == ts_ms


def unexpected_users(
    final: Mapping[str, ProfileUpdated], expected: Mapping[str, ExpectedProfile], hostile: Sequence[Hostile]
) -> list[str]:
    """Users with a profile who should have none: a bad message folded somewhere."""
    allowed = set(expected) | {h.fold[0] for h in hostile if h.fold is not None}
    return sorted(user for user in final if user not in allowed)
