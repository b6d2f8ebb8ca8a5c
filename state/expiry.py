"""Event-time idle expiry: a user whose newest event is older than the TTL, by the watermark, is expired."""

from __future__ import annotations

from state.record import UserState
from state.spec import StateSpec


def expires_at_ms(record: UserState, spec: StateSpec) -> int:
    """The watermark at which `record` expires: its newest event time plus the TTL."""
    return record.last_event_ms + spec.user_ttl_ms


def is_expired(record: UserState, watermark_ms: int, spec: StateSpec) -> bool:
    """Whether the user has been idle longer than `spec.user_ttl_ms` in event time.

    `watermark_ms` is the caller's event-time clock (e.g. the newest event time seen on the partition), never
    the wall clock. Idle exactly the TTL is not yet expired. A record without any accepted event carries
    nothing worth keeping and counts as expired.
    """
    return is_idle(record.event_count, record.last_event_ms, watermark_ms, spec)


def is_idle(event_count: int, last_event_ms: int, watermark_ms: int, spec: StateSpec) -> bool:
    """`is_expired` on the two fields it needs, as `state.codec.peek_activity` reads them from a stored value."""
    if event_count == 0:
        return True
    return watermark_ms > last_event_ms + spec.user_ttl_ms
