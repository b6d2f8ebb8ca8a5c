"""Coverage: the share of each model version's catalogue that this recommender showed in the recent window.

One boolean per item and version (50,000 items: 49 KiB) for the current window and one for the previous; the
ratio is over both, so it covers between one and two windows and never drops to zero at a window's turn. Each
replica sees only the requests it answered: with several behind a load balancer, the largest replica's ratio is
a lower bound of the service's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass
class _Shown:
    current: npt.NDArray[np.bool_]
    previous: npt.NDArray[np.bool_]
    started_s: float


class Coverage:
    """Items shown per model version, over a rolling pair of windows."""

    def __init__(self, window_s: float = 3600.0, clock_s: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock_s = clock_s
        self._lock = threading.Lock()
        self._versions: dict[str, _Shown] = {}

    def shown(self, version: str, size: int, rows: Iterable[int]) -> None:
        """Record that the items at ``rows`` of ``version`` (of ``size`` items) were shown."""
        index = np.fromiter(rows, dtype=np.int64)
        with self._lock:
            shown = self._versions.get(version)
            if shown is None or len(shown.current) != size:
                empty = np.zeros(size, dtype=np.bool_)
                shown = self._versions[version] = _Shown(empty, empty.copy(), self._clock_s())
            self._roll(shown)
            shown.current[index] = True

    def _roll(self, shown: _Shown) -> None:
        elapsed = self._clock_s() - shown.started_s
        if elapsed < self.window_s:
            return
        # One window passed: the current becomes the previous; two or more: nothing recent is left.
        shown.previous = shown.current if elapsed < 2 * self.window_s else np.zeros_like(shown.current)
        shown.current = np.zeros_like(shown.current)
        shown.started_s += (elapsed // self.window_s) * self.window_s

    def ratios(self, loaded: Iterable[str]) -> dict[str, float]:
        """Share of each loaded version's items shown in the last one to two windows (0 when none was)."""
        keep = set(loaded)
        with self._lock:
            for version in [v for v in self._versions if v not in keep]:
                del self._versions[version]  # an unloaded version's bits go with it
            out: dict[str, float] = {}
            for version, shown in self._versions.items():
                self._roll(shown)
                out[version] = float(np.count_nonzero(shown.current | shown.previous)) / max(1, len(shown.current))
        return {version: out.get(version, 0.0) for version in keep}
