"""JSON-ready views of a record and of store statistics, for `profilestream state inspect` and `state stats`.

Hashes are shown as 16 hex digits; nothing here holds raw text, since state never stores any.
"""

from __future__ import annotations

from state.aggregates import profile_aggregates
from state.events import EVENT_TYPE_NAMES, StateEvent, hash_hex
from state.reader import StoreStats
from state.record import UserState
from state.spec import StateSpec


def describe_event(event: StateEvent) -> dict[str, object]:
    """One stored event; absent hashes and zero amounts are left out."""
    out: dict[str, object] = {
        "type": EVENT_TYPE_NAMES[event.type_code],
        "ts_ms": event.ts_ms,
        "event_id_hash": hash_hex(event.event_id_hash),
    }
    if event.item_hash:
        out["item_hash"] = hash_hex(event.item_hash)
    if event.category_hash:
        out["category_hash"] = hash_hex(event.category_hash)
    if event.query_terms:
        out["query_terms"] = [hash_hex(t) for t in event.query_terms]
    if event.quantity or event.price:
        out["quantity"] = event.quantity
        out["price"] = event.price
    return out


def describe_record(record: UserState, spec: StateSpec) -> dict[str, object]:
    """Every field of a record, its aggregates as published, and the recent window."""
    return {
        "version": record.version,
        "model_version": record.model_version,
        "hidden_dim": int(record.hidden.size),
        "hidden": [float(x) for x in record.hidden],
        "base_known": record.base_known,
        "base_hidden_dim": int(record.base_hidden.size),
        "base_prev_ts_ms": record.base_prev_ts_ms,
        "first_event_ms": record.first_event_ms,
        "last_event_ms": record.last_event_ms,
        "event_count": record.event_count,
        "aggregates": profile_aggregates(record, spec),
        "aggregate_states": sorted(record.aggregates),
        "remembered_ids": len(record.recent) + len(record.evicted_ids),
        "recent": [describe_event(e) for e in record.recent],
    }


def describe_stats(stats: StoreStats) -> dict[str, object]:
    """Totals and per-partition figures of `store_stats`."""
    return {
        "users": stats.users,
        "disk_bytes": stats.disk_bytes,
        "sst_bytes": stats.sst_bytes,
        "value_bytes": stats.value_bytes,
        "bytes_per_user": round(stats.bytes_per_user, 1),
        "sst_bytes_per_user": round(stats.sst_bytes_per_user, 1),
        "value_bytes_per_user": round(stats.value_bytes_per_user, 1),
        "partitions": [
            {
                "partition": p.partition,
                "store": str(p.store),
                "users": p.users,
                "disk_bytes": p.disk_bytes,
                "sst_bytes": p.sst_bytes,
                "wal_bytes": p.wal_bytes,
                "value_bytes": p.value_bytes,
                **({"undecodable": p.undecodable} if p.undecodable is not None else {}),
            }
            for p in stats.partitions
        ],
    }
