"""The hostile messages of the chaos suite and what must become of each.

The decoder-level rows come from the shared table in ``tests/streams/hostile_inputs.py`` (one table for the
decoder's unit tests and this suite); this module adds what only a broker can carry: a missing or foreign key
on a real user's partition, a partition the key does not hash to, records over 1 MB, forged headers, and
replays of accepted events. Every message has one expectation:

- ``DEAD_LETTER``: in ``events.deadletter`` with a ``ps.reason`` header; ``reason`` names the code the contract
  implies (None: any code, the contract names none);
- ``FOLD``: a valid event of a user of its own: folded as that user's only event, never dead-lettered;
- ``EITHER``: a contract-valid extreme: folded as its user's only event, or dead-lettered with any reason;
- ``NOT_TWICE``: a replay of an accepted event: never applied again (dropped, or dead-lettered).

Bad messages aimed at real users (their key, their id) check that a bad message costs only itself (DESIGN.md,
invariant 2): the real user's profile must come out exactly as without it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from kafka.partitioner.default import murmur2

from streams.contract.decoder import Rejection, decode_event
from streams.contract.events import Event, encode_event, event_to_dict
from tests.streams.hostile_inputs import HostileInput, hostile_inputs

MiB = 1024 * 1024
LARGE_MESSAGE_BYTES = 16 * MiB
"""``max.message.bytes`` of the input topics in the hostile scenario, and the suite producer's request limit:
room for the shared table's 10 MB row and a 1.5 MB one of this module."""
HOUR_MS = 3_600_000
CLOCK_HORIZON_MS = HOUR_MS
"""How much later than the sender's clock the worker's may read when it judges a message (see shared_rows)."""


class Expect(Enum):
    """What must become of a hostile message (see the module docstring)."""

    DEAD_LETTER = "dead letter"
    FOLD = "folded"
    EITHER = "folded or dead letter"
    NOT_TWICE = "not applied twice"


@dataclass(frozen=True, slots=True)
class Hostile:
    """One hostile message and its expectation."""

    kind: str
    topic_type: str
    key: bytes | None
    value: bytes | None
    expect: Expect
    reason: str | None = None
    """For ``DEAD_LETTER``: the ``ps.reason`` it must carry (None: any)."""
    fold: tuple[str, int] | None = None
    """For ``FOLD`` and ``EITHER``: (user_id, ts_ms) of the event, its user's only one."""
    wrong_partition: bool = False
    """Produced to a partition other than the one its key hashes to."""
    headers: tuple[tuple[str, bytes], ...] = ()
    at_end: bool = False
    """Sent after every valid event: its event time is near now, later than the generated files."""

    def partition(self, partitions: int) -> int | None:
        """The explicit partition to produce to (None: the key decides, like every producer)."""
        if not self.wrong_partition:
            return None
        assert self.key is not None
        owner = int(murmur2(self.key) & 0x7FFFFFFF) % partitions  # kafka-python's DefaultPartitioner
        return (owner + 1) % partitions


def _fold_target(value: bytes) -> tuple[str, int]:
    """(user_id, ts) of a row's event."""
    # Unknown fields may hold integers longer than Python converts by default; their value does not matter here.
    obj = json.JSONDecoder(parse_int=lambda text: int(text) if len(text) < 100 else 0).decode(value.decode())
    return str(obj["user_id"]), int(obj["ts"])


def shared_rows(now_ms: int, tag: str) -> list[Hostile]:
    """The shared decoder-level table as hostile messages; its valid rows are timed near ``now_ms``.

    Rows on the edge of the allowed clock skew (an event time of now plus the skew, plus one millisecond) get their
    verdict from the worker's clock, which reads later than ``now_ms``: whatever the decoder says of them an hour
    later differs from the table's verdict, and either outcome is right for them.
    """
    out = []
    for row in hostile_inputs(now_ms, tag=tag):
        on_edge = _verdict(row, now_ms) != _verdict(row, now_ms + CLOCK_HORIZON_MS)
        if row.reason is None or on_edge:
            assert row.value is not None
            expect = Expect.EITHER if on_edge else Expect.FOLD
            fold = _fold_target(row.value)
            out.append(Hostile(row.name, row.topic_type, row.key, row.value, expect, fold=fold, at_end=True))
        else:
            out.append(Hostile(row.name, row.topic_type, row.key, row.value, Expect.DEAD_LETTER, row.reason.value))
    return out


def _verdict(row: HostileInput, now_ms: int) -> str | None:
    """The decoder's reason for ``row`` by a clock reading ``now_ms`` (None: accepted)."""
    try:
        decoded = decode_event(row.value, row.key, topic_type=row.topic_type, require_key=True, now_ms=now_ms)
    except Exception as exc:  # a decoder that is not total is what the suite is there to show, not to die of
        return f"(the decoder raised {type(exc).__name__})"
    return decoded.reason.value if isinstance(decoded, Rejection) else None


def _own(kind: str, tag: str, **changes: object) -> tuple[bytes, bytes]:
    """Key and value of a valid browse event of the kind's own user, with ``changes``."""
    user = f"{tag}-{kind}"
    obj: dict[str, object] = {
        "schema": 1, "event_id": f"{user}-event", "user_id": user, "type": "browse",
        "ts": changes.pop("ts", 0), "item_id": "item-42", "category": "books",
    }  # fmt: skip
    obj.update(changes)
    return user.encode(), json.dumps(obj, separators=(",", ":")).encode()


def broker_rows(now_ms: int, tag: str, victims: Sequence[Event]) -> list[tuple[Hostile, int]]:
    """The broker-level rows, each with the index in ``victims`` of the event it must follow (-1: anywhere).

    ``victims`` are four events of four real users."""
    a, b, c, d = victims[:4]
    ts = a.ts_ms
    key_wp, value_wp = _own("wrong-partition-own-user", tag, ts=ts)
    _, value_foreign = _own("key-of-real-user", tag, ts=ts)
    key_large, value_large = _own("value-1.5mb", tag, ts=ts, padding="p" * (3 * MiB // 2))
    key_forged, _ = _own("forged-headers", tag)
    future_ts = now_ms + 23 * HOUR_MS
    key_future, value_future = _own("ts-23h-future", tag, ts=future_ts)
    rows: list[tuple[Hostile, int]] = [
        (Hostile("wrong-partition-own-user", "browse", key_wp, value_wp, Expect.DEAD_LETTER, "wrong_partition",
                 wrong_partition=True), -1),
        # A new, otherwise valid event of a real user, on a partition that does not own the user.
        (Hostile("wrong-partition-real-user", b.type, b.user_id.encode(),
                 json.dumps({**event_to_dict(b), "event_id": f"{tag}-wrong-partition"}).encode(),
                 Expect.DEAD_LETTER, "wrong_partition", wrong_partition=True), -1),
        # A real user's key on a message about another user: lands on the real user's partition.
        (Hostile("key-of-real-user", "browse", a.user_id.encode(), value_foreign, Expect.DEAD_LETTER,
                 "key_mismatch"), -1),
        # A real user's next event without a key: it lands on whichever partition.
        (Hostile("no-key-real-user", d.type, None,
                 json.dumps({**event_to_dict(d), "event_id": f"{tag}-no-key"}).encode(),
                 Expect.DEAD_LETTER, "missing_key"), -1),
        # A tombstone keyed by a real user on an input topic: must not erase anything.
        (Hostile("tombstone-real-user", "browse", c.user_id.encode(), None, Expect.DEAD_LETTER, "missing_field"), -1),
        (Hostile("value-1.5mb", "browse", key_large, value_large, Expect.DEAD_LETTER, "too_large"), -1),
        # Headers that imitate the worker's: the dead letter must carry the worker's verdict, not these.
        (Hostile("forged-headers", "browse", key_forged, b"not json", Expect.DEAD_LETTER, "not_json",
                 headers=(("ps.reason", b"none"), ("ps.source.offset", b"0"))), -1),
        # Contract-valid or not depending on the allowed clock skew: either outcome, for its own user only.
        (Hostile("ts-23h-future", "browse", key_future, value_future, Expect.EITHER,
                 fold=(key_future.decode(), future_ts), at_end=True), -1),
        # Replays: the very same bytes again, and the same id with other content.
        (Hostile("replay-exact", a.type, a.user_id.encode(), encode_event(a), Expect.NOT_TWICE), 0),
        (Hostile("replay-same-id-other-content", c.type, c.user_id.encode(),
                 json.dumps({**event_to_dict(c), "session_id": "replayed"}).encode(), Expect.NOT_TWICE), 2),
    ]  # fmt: skip
    return rows


def catalogue(now_ms: int, tag: str, victims: Sequence[tuple[int, Event]]) -> list[tuple[Hostile, int]]:
    """Every hostile message, each with the index in the event list of the event it must follow (-1: anywhere).

    ``victims`` are (index, event) pairs from :func:`pick_victims`; ``now_ms`` is the wall clock when the messages
    are sent; ``tag`` prefixes the hostile users' ids (fresh per run, so no run sees another's events)."""
    positions = [index for index, _ in victims]
    broker = [(h, positions[v] if v >= 0 else -1) for h, v in broker_rows(now_ms, tag, [e for _, e in victims])]
    out = [(h, -1) for h in shared_rows(now_ms, tag)] + broker
    kinds = [h.kind for h, _ in out]
    assert len(kinds) == len(set(kinds)), "hostile kinds must be unique"
    return out


def pick_victims(events: Sequence[Event], seed: int) -> list[tuple[int, Event]]:
    """Four events of four different real users from the first half of ``events``, by seed."""
    rng = random.Random(seed)
    picked: list[tuple[int, Event]] = []
    users: set[str] = set()
    while len(picked) < 4:
        index = rng.randrange(len(events) // 2)
        event = events[index]
        if event.user_id not in users:
            users.add(event.user_id)
            picked.append((index, event))
    return picked


SMALL_KINDS = frozenset(
    {
        "nan-literal", "deep-array", "lone-surrogate-user-id", "quantity-2-pow-70", "no-key", "ts-future-skew-edge",
        "wrong-partition-real-user", "key-of-real-user", "tombstone-real-user", "value-1.5mb", "replay-exact",
    }
)  # fmt: skip
"""The kinds the version inside ``make test`` sends."""
