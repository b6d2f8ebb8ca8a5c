"""How the long-running client services (recommender, feedback consumer) are told to stop."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """``stop`` (or a new event), set by SIGINT or SIGTERM when called from the main thread; a service run in a
    thread (the tests) is stopped through the event alone, since only the main thread may install handlers."""
    event = stop or threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        event.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    return event
