"""The event types, defined once per room (models/ and state/ may not import the contract), held equal here."""

from __future__ import annotations

from typing import get_args

from models.events import EVENT_TYPES as MODEL_TYPES
from state.events import EVENT_TYPE_NAMES, EventType
from streams.bridge import TYPE_CODES
from streams.contract.events import EVENT_TYPES
from streams.contract.events import EventType as ContractEventType


def test_every_room_names_the_same_event_types_in_the_same_order() -> None:
    assert get_args(ContractEventType) == EVENT_TYPES
    assert MODEL_TYPES == EVENT_TYPES
    assert EVENT_TYPE_NAMES == EVENT_TYPES
    assert {name: int(EventType[name.upper()]) for name in EVENT_TYPES} == TYPE_CODES
