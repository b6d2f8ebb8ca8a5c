"""Synthetic event histories for the model tests (deterministic, seeded)."""

from __future__ import annotations

import random

import torch
from torch import Tensor

from models.encoder import EncoderConfig, ProfileEncoder
from models.features import EventInput, FeatureSpace, make_event_input

BASE_TS_MS = 1_700_000_000_000


def random_history(
    rnd: random.Random, length: int, num_items: int = 40, start_ms: int = BASE_TS_MS
) -> list[EventInput]:
    """A history mixing all event types, unknown-looking categories, queries and purchases."""
    events: list[EventInput] = []
    ts_ms = start_ms
    for _ in range(length):
        ts_ms += rnd.choice([0, 500, 20_000, 3_600_000, 90_000_000])
        kind = rnd.random()
        item = f"item-{rnd.randrange(num_items)}"
        if kind < 0.2:
            events.append(make_event_input("search", ts_ms, query=rnd.choice(["Cheap hotel", "Berlin Mitte", "spa"])))
        elif kind < 0.3:
            events.append(
                make_event_input(
                    "purchase", ts_ms, item_id=item, category="cat-a", price=rnd.uniform(1, 500), quantity=2
                )
            )
        else:
            events.append(make_event_input("browse", ts_ms, item_id=item, category=rnd.choice(["cat-a", "cat-b"])))
    return events


def successor_histories(num_users: int, num_items: int, seed: int, max_len: int = 20) -> list[list[EventInput]]:
    """Clear structure: after item i the user browses item i+1 (mod num_items); some searches in between."""
    rnd = random.Random(seed)
    histories = []
    for user in range(num_users):
        ts_ms = BASE_TS_MS + user * 1000
        current = rnd.randrange(num_items)
        events: list[EventInput] = []
        for _ in range(rnd.randint(4, max_len)):
            ts_ms += rnd.randint(1_000, 60_000)
            if rnd.random() < 0.1:
                events.append(make_event_input("search", ts_ms, query="hotel"))
                continue
            events.append(make_event_input("browse", ts_ms, item_id=f"i{current}", category=f"c{current % 3}"))
            current = (current + 1) % num_items
        histories.append(events)
    return histories


def fold_in_random_chunks(
    model: ProfileEncoder, histories: list[list[EventInput]], rnd: random.Random, max_chunk: int
) -> Tensor:
    """The state after folding every history in chunks of 1..max_chunk events over several `fold` calls [B, S]."""
    h = model.initial_hidden(len(histories))
    done = [0] * len(histories)
    while any(d < len(s) for d, s in zip(done, histories, strict=True)):
        users = [b for b, s in enumerate(histories) if done[b] < len(s)]
        chunks = [histories[b][done[b] : done[b] + rnd.randint(1, max_chunk)] for b in users]
        prev = [histories[b][done[b] - 1].ts_ms if done[b] else None for b in users]
        h[users], _ = model.fold(h[users], chunks, prev)
        for b, chunk in zip(users, chunks, strict=True):
            done[b] += len(chunk)
    return h


def noisy_model(histories: list[list[EventInput]], config: EncoderConfig, seed: int = 0) -> ProfileEncoder:
    """A vocabulary fitted on every other history (so some items stay unknown) and large random weights, so that
    two computations of the same profile that disagree would show it."""
    torch.manual_seed(seed)
    space = FeatureSpace.fit(histories[::2], num_query_buckets=32, item_categories=config.item_category_vectors)
    model = ProfileEncoder(config, space)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model.eval()
