"""The topic names of the contract, without the deployment's prefix (``Settings.topic`` adds it)."""

from __future__ import annotations

DEADLETTER = "events.deadletter"
PROFILES = "profiles.updated"
ERASURE = "privacy.erasure"
MODEL_ITEMS = "models.items"
"""Every model version's item vectors (compacted; streams/contract/items.py)."""


STATE_TABLE = "user-state"
"""The workers' state table; faust names its changelog topic after it (:func:`state_changelog`)."""


def state_changelog(app_id: str) -> str:
    """The state table's changelog topic, as faust names it: ``<app_id>-user-state-changelog`` (no prefix)."""
    return f"{app_id}-{STATE_TABLE}-changelog"


def input_topic(event_type: str) -> str:
    """The unprefixed input topic of an event type."""
    return f"events.{event_type}"


IMPRESSIONS = "events.impression"
"""What recommenders showed, one impression per response, keyed by user_id (streams/contract/feedback.py)."""
