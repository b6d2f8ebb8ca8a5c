"""Offline reading of contract-v1 JSON-lines files into per-user model inputs, exactly as the worker sees them.

Every line goes through the one decoder (`streams.contract.decoder.decode_event`); a bad line is counted by reason and
skipped, never fatal. Events are grouped per user, a repeated `event_id` of the same user is dropped (the worker
drops it by the same key), and each user's events are put in the worker's order: event time, ties broken by
the event id's hash (`state.events.event_order_key`), whatever order they arrive in. Each event becomes a model
input through the worker's own conversion, `to_model_input(to_state_event(event, max_query_terms))`, with the
worker's `StateSpec().max_query_terms`: a user's inputs equal `streams.bridge.model_sequence` of the user's
events, so an offline profile is the profile the stream publishes.

Deterministic: users are ordered by user id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.evaluation import ClickOut
from models.features import EventInput, stable_hash64
from state.events import event_order_key
from state.spec import StateSpec
from streams.bridge import to_model_input, to_state_event
from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import Event, PurchaseEvent, SearchEvent

MAX_REPORTED_BAD_LINES = 10


@dataclass
class ReadReport:
    """What reading a file found: lines, events, bad lines by reason (with the first few line numbers)."""

    lines: int = 0
    events: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    first_bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, detail naming the field)
    duplicates: int = 0

    @property
    def bad_lines(self) -> int:
        """Number of lines the decoder rejected."""
        return sum(self.bad.values())

    def summary(self) -> str:
        """One line for the operator: reason codes, line numbers and the decoder's details (which name the field and
        the rule, never a field's value)."""
        text = f"read {self.lines} lines: {self.events} events, {self.bad_lines} bad lines"
        if self.bad:
            text += " (" + ", ".join(f"{reason} {n}" for reason, n in sorted(self.bad.items())) + ")"
            text += "; first bad lines: " + "; ".join(
                f"{n}: {reason} ({detail})" for n, reason, detail in self.first_bad
            )
        if self.duplicates:
            text += f"; {self.duplicates} duplicate event ids dropped"
        return text


def read_events(path: Path, report: ReadReport | None = None, *, now_ms: int | None = None) -> Iterator[Event]:
    """Decode the events of a JSON-lines file in file order; bad lines are counted in `report` and skipped.

    With ``now_ms`` an event dated further ahead of it than the contract allows is a bad line too, as the worker
    refuses it (``ts_out_of_range``): a backfill must not take it as the clock."""
    report = report if report is not None else ReadReport()
    with Path(path).open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            report.lines += 1
            decoded = decode_event(stripped, now_ms=now_ms)
            if isinstance(decoded, Rejection):
                report.bad[decoded.reason.value] += 1
                if len(report.first_bad) < MAX_REPORTED_BAD_LINES:
                    report.first_bad.append((number, decoded.reason.value, decoded.detail))
                continue
            report.events += 1
            yield decoded


@dataclass(frozen=True)
class UserHistories:
    """Per-user, time-ordered events: the contract events, the model inputs built from them and, for an
    explicit train/test split, which events came from the test file; all aligned."""

    user_ids: list[str]
    events: list[list[Event]]
    inputs: list[list[EventInput]]
    is_test: list[list[bool]]

    def item_ids(self) -> dict[int, str]:
        """Item hash -> item id of every item-bearing event (for the vocabulary's exported ids)."""
        return {
            stable_hash64(e.item_id): e.item_id
            for history in self.events
            for e in history
            if not isinstance(e, SearchEvent)
        }

    def __len__(self) -> int:
        return len(self.user_ids)


def max_query_terms() -> int:
    """The number of query terms the worker keeps per search (the state spec's), used for every conversion."""
    return StateSpec().max_query_terms


def group_by_user(events: Iterable[Event], report: ReadReport | None = None) -> UserHistories:
    """Group events per user in the worker's event order, dropping a user's repeated event ids."""
    report = report if report is not None else ReadReport()
    return _group(((e, False) for e in events), report, report)


def _group(events: Iterable[tuple[Event, bool]], train_report: ReadReport, test_report: ReadReport) -> UserHistories:
    """Group per user; a dropped duplicate is counted in the report of the file it came from (test or not)."""
    per_user: dict[str, list[tuple[Event, bool]]] = {}
    seen: dict[str, set[str]] = {}
    for event, is_test in events:
        ids = seen.setdefault(event.user_id, set())
        if event.event_id in ids:
            (test_report if is_test else train_report).duplicates += 1
            continue
        ids.add(event.event_id)
        per_user.setdefault(event.user_id, []).append((event, is_test))
    terms = max_query_terms()
    user_ids = sorted(per_user)
    ordered = []
    for user in user_ids:
        stored = [(to_state_event(e, terms), e, t) for e, t in per_user[user]]
        stored.sort(key=lambda triple: event_order_key(triple[0]))
        ordered.append(stored)
    return UserHistories(
        user_ids,
        [[e for _, e, _ in history] for history in ordered],
        [[to_model_input(s) for s, _, _ in history] for history in ordered],
        [[t for _, _, t in history] for history in ordered],
    )


def read_histories(path: Path) -> tuple[UserHistories, ReadReport]:
    """Read a JSON-lines file into per-user histories; the report counts bad lines and duplicates."""
    report = ReadReport()
    histories = group_by_user(read_events(path, report), report)
    return histories, report


def read_split_histories(train_path: Path, test_path: Path) -> tuple[UserHistories, ReadReport, ReadReport]:
    """Read an explicit split: every user's events of both files in one time-ordered history, test events marked.

    An event id seen in the training file is dropped from the test file (counted as a duplicate of the test file);
    an event id repeated within the training file is counted in the training file's report.
    """
    train_report, test_report = ReadReport(), ReadReport()
    train_events = [(e, False) for e in read_events(train_path, train_report)]
    test_events = [(e, True) for e in read_events(test_path, test_report)]
    return _group([*train_events, *test_events], train_report, test_report), train_report, test_report


def clickouts(
    histories: UserHistories, targets: Sequence[Sequence[int]], shown: Mapping[str, Sequence[str]]
) -> list[ClickOut]:
    """The click-out targets: purchase targets whose event id has an impressions list in `shown`."""
    out: list[ClickOut] = []
    for b, positions in enumerate(targets):
        for j in positions:
            event = histories.events[b][j]
            items = shown.get(event.event_id)
            if isinstance(event, PurchaseEvent) and items:
                out.append(ClickOut((b, j), stable_hash64(event.item_id), tuple(stable_hash64(i) for i in items)))
    return out
