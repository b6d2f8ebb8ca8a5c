"""The topic names of the contract, without the deployment's prefix (``Settings.topic`` adds it)."""

from __future__ import annotations

DEADLETTER = "events.deadletter"
PROFILES = "profiles.updated"
ERASURE = "privacy.erasure"
MODEL_ITEMS = "models.items"
"""Every model version's item vectors (compacted; streams/contract/items.py)."""


def input_topic(event_type: str) -> str:
    """The unprefixed input topic of an event type."""
    return f"events.{event_type}"


IMPRESSIONS = "events.impression"
"""What recommenders showed, one impression per response, keyed by user_id (streams/contract/feedback.py)."""
