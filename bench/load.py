"""The benchmark's load: a reproducible stream of contract-v1 events as Kafka messages.

A :class:`LoadSpec` fixes everything about a stream (users, events, type mix, Zipf-like popularity of users and
items, event-time spacing, seed), and :func:`build_schedule` turns it into plain numpy arrays, the same arrays for
the same spec on every machine. :class:`EventEncoder` renders event *i* of a schedule as the (topic type, key,
value) of one Kafka message, with the schedule's event time (pre-loaded backlogs) or with a time the caller passes
(paced load, which stamps each event with the wall clock when it is sent).

Two user orders exist. ``zipf`` draws each event's user from a bounded Zipf law, so a few users are very active
and most are not, as in real traffic. ``rounds`` gives every user exactly one event per round, in a shuffled order
each round: after ``k`` rounds every user has ``k`` events, which lets the side-by-side comparison measure the
designs at a known window length. ``blocks`` sends each user's events together, the user's own clock advancing
by ``mean_gap_ms`` on average between them (the state-size measurement: every user ends with the same history).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from streams.contract.events import EVENT_TYPES

UserOrder = Literal["zipf", "rounds", "blocks"]
Message = tuple[str, bytes, bytes]
"""(event type, key, value): the key is the user id and the event type names the input topic."""

START_MS = 1_767_225_600_000
"""Event time of a schedule's first event (2026-01-01 UTC): fixed, so a spec always gives the same bytes."""
QUERY_WORDS = 400
"""Vocabulary of the generated search queries."""
CURRENCY = "EUR"

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LoadSpec:
    """Everything that determines a generated event stream."""

    users: int
    events: int
    seed: int = 20_260_101
    type_mix: tuple[float, float, float] = (0.7, 0.2, 0.1)
    """Shares of browse, search and purchase events (normalised)."""
    user_order: UserOrder = "zipf"
    user_skew: float = 0.6
    """Zipf exponent of user activity for the ``zipf`` order (0 is uniform)."""
    items: int = 20_000
    item_skew: float = 1.0
    """Zipf exponent of item popularity (also the search words' popularity)."""
    categories: int = 24
    mean_gap_ms: int = 500
    """Mean event-time gap between consecutive events of the whole stream."""

    def __post_init__(self) -> None:
        if self.users < 1 or self.events < 1:
            raise ValueError("users and events must be positive")
        if self.user_order != "zipf" and self.events % self.users:
            raise ValueError(f"the {self.user_order} order needs events to be a multiple of users")
        if len(self.type_mix) != len(EVENT_TYPES) or min(self.type_mix) < 0 or sum(self.type_mix) <= 0:
            raise ValueError("type_mix needs one non-negative share per event type")
        if self.items < 1 or self.categories < 1 or self.mean_gap_ms < 0:
            raise ValueError("items and categories must be positive, mean_gap_ms non-negative")
        if self.user_skew < 0 or self.item_skew < 0:
            raise ValueError("skews must not be negative")


@dataclass(frozen=True)
class Schedule:
    """A generated stream as arrays of length ``events`` (event *i* is column *i* of every array)."""

    spec: LoadSpec
    user: I64
    """User index, 0..users-1; the user id is :func:`user_id` of it."""
    type_code: I64
    """Index into ``streams.contract.events.EVENT_TYPES``."""
    item: I64
    """Item rank (browse, purchase) or first query word rank (search); 0 is the most popular."""
    words: I64
    """Words in a search query, 1..3 (unused for other types)."""
    quantity: I64
    price_cents: I64
    ts_ms: I64
    """Event time in the backlog: non-decreasing over the stream, or over each user's block for ``blocks``."""

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def events_per_user(self) -> I64:
        """How many events each user index has in the whole stream."""
        return np.bincount(self.user, minlength=self.spec.users).astype(np.int64)


def user_id(index: int) -> str:
    """The user id of a user index: fixed width, so ids sort like their indices."""
    return f"u{index:07d}"


def user_index(key: bytes) -> int:
    """Inverse of :func:`user_id` on a message key; raises ValueError for a key the generator did not make."""
    if key[:1] != b"u":
        raise ValueError("not a generated user id")
    return int(key[1:])


def zipf_ranks(rng: np.random.Generator, n: int, count: int, skew: float) -> I64:
    """``count`` ranks in 0..n-1 with P(rank r) proportional to (r+1)^-skew (skew 0 is uniform)."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -skew
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(count), side="right")
    return np.minimum(ranks, n - 1).astype(np.int64)


def build_schedule(spec: LoadSpec) -> Schedule:
    """The stream of ``spec``: identical arrays for identical specs."""
    rng = np.random.default_rng(spec.seed)
    n = spec.events
    per_user = n // spec.users
    if spec.user_order == "rounds":
        user = np.concatenate([rng.permutation(spec.users) for _ in range(per_user)]).astype(np.int64)
    elif spec.user_order == "blocks":
        user = np.repeat(np.arange(spec.users, dtype=np.int64), per_user)
    else:
        # Ranks are dealt to user indices by a fixed permutation, so activity is not sorted by user id.
        ranks = zipf_ranks(rng, spec.users, n, spec.user_skew)
        user = rng.permutation(spec.users).astype(np.int64)[ranks]
    mix = np.asarray(spec.type_mix, dtype=np.float64)
    type_code = rng.choice(len(EVENT_TYPES), size=n, p=mix / mix.sum()).astype(np.int64)
    item = zipf_ranks(rng, spec.items, n, spec.item_skew)
    words = rng.integers(1, 4, size=n, dtype=np.int64)
    quantity = rng.integers(1, 4, size=n, dtype=np.int64)
    price_cents = rng.integers(199, 20_000, size=n, dtype=np.int64)
    gaps = rng.integers(0, 2 * spec.mean_gap_ms + 1, size=n, dtype=np.int64)
    if spec.user_order == "blocks":
        ts_ms = START_MS + np.cumsum(gaps.reshape(spec.users, per_user), axis=1, dtype=np.int64).reshape(n)
    else:
        ts_ms = START_MS + np.cumsum(gaps, dtype=np.int64)
    return Schedule(spec, user, type_code, item, words, quantity, price_cents, ts_ms)


class EventEncoder:
    """Renders events of a schedule as Kafka messages (contract-v1 JSON, keyed by user id)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        spec = schedule.spec
        self._types = [t.encode() for t in EVENT_TYPES]
        self._seed = f"{spec.seed:x}"
        self._items = [f"item-{rank:06d}" for rank in range(spec.items)]
        self._categories = [f"cat-{rank % spec.categories:02d}" for rank in range(spec.items)]
        self._words = [f"w{rank:03d}" for rank in range(QUERY_WORDS)]
        # Plain Python lists: indexing them is several times faster than indexing numpy arrays one at a time.
        self._user = schedule.user.tolist()
        self._type = schedule.type_code.tolist()
        self._item = schedule.item.tolist()
        self._nwords = schedule.words.tolist()
        self._quantity = schedule.quantity.tolist()
        self._price = schedule.price_cents.tolist()
        self._ts = schedule.ts_ms.tolist()

    def message(self, i: int, ts_ms: int | None = None) -> Message:
        """Event ``i`` as (event type, key, value); ``ts_ms`` replaces the schedule's event time."""
        uid = user_id(self._user[i])
        code = self._type[i]
        ts = self._ts[i] if ts_ms is None else ts_ms
        head = f'{{"schema":1,"event_id":"e{self._seed}-{i}","user_id":"{uid}","type":"{EVENT_TYPES[code]}","ts":{ts}'
        if code == 1:  # search
            first = self._item[i] % QUERY_WORDS
            query = " ".join(self._words[(first + 7 * k) % QUERY_WORDS] for k in range(self._nwords[i]))
            body = f',"query":"{query}"}}'
        else:
            rank = self._item[i]
            body = f',"item_id":"{self._items[rank]}","category":"{self._categories[rank]}"'
            if code == 2:  # purchase
                cents = self._price[i]
                body += (
                    f',"quantity":{self._quantity[i]},"price":{cents // 100}.{cents % 100:02d},"currency":"{CURRENCY}"'
                )
            body += "}"
        return EVENT_TYPES[code], uid.encode(), (head + body).encode()

    def messages(self, start: int = 0, stop: int | None = None) -> Iterator[Message]:
        """Events ``start..stop-1`` with their schedule's event times."""
        end = len(self.schedule) if stop is None else stop
        for i in range(start, end):
            yield self.message(i)
