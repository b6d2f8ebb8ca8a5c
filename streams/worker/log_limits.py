"""Rate-limited logging: one line per logger and message template every few seconds, with a count of the rest.

During a broker outage aiokafka, Faust and mode log the same error on every retry (several a second per
connection), which buries everything else. :class:`RateLimitFilter` lets the first record of a
(logger, message template) pair through, drops the same pair for `interval_s`, and appends to the next
one it lets through how many it dropped. The template is the format string before its arguments are
applied (`"Unable connect to node with id %s: %s"`), so lines that differ only in their arguments count as
the same line.

Filters are attached to loggers, not handlers: mode (Faust's worker) replaces the root handlers when it
sets up logging, but leaves loggers and their filters alone. A logger filter only sees records logged on
that very logger, so :func:`install_log_rate_limit` attaches it to every existing logger under the given
names; call it once the worker's modules are imported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

DEFAULT_INTERVAL_S: Final = 30.0

DEFAULT_LOGGERS: Final = ("aiokafka", "kafka", "faust", "mode", "streams", "state", "models")
"""The Kafka clients, Faust and its service library, and ours."""

MAX_KEYS: Final = 2048
"""(logger, template) pairs remembered; the least recently seen is forgotten beyond that."""


@dataclass
class _Seen:
    emitted_at: float
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """At most one record per (logger name, message template) every `interval_s` seconds.

    Records below `min_level` always pass: the floods worth limiting are warnings and errors, and limiting
    info lines would hide routine per-partition messages. The record let through after a quiet period
    carries `[N similar lines suppressed in the last S s]` and the attribute `suppressed` (N).
    """

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        min_level: int = logging.WARNING,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.min_level = min_level
        self.max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        # aiokafka and kafka-python may log from threads of their own.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None:
                self._seen.move_to_end(key)
                if now - seen.emitted_at < self.interval_s:
                    seen.suppressed += 1
                    return False
                suppressed, since = seen.suppressed, seen.emitted_at
                seen.emitted_at, seen.suppressed = now, 0
            else:
                suppressed, since = 0, now
                self._seen[key] = _Seen(now)
                if len(self._seen) > self.max_keys:
                    self._seen.popitem(last=False)
        if suppressed:
            _annotate(record, suppressed, now - since)
        return True

    def pending(self) -> int:
        """Records dropped and not yet reported by a later line of the same kind."""
        with self._lock:
            return sum(seen.suppressed for seen in self._seen.values())


def _annotate(record: logging.LogRecord, suppressed: int, seconds: float) -> None:
    if "suppressed" in record.__dict__:
        return  # annotated already (the same record seen by a second filter)
    try:
        message = record.getMessage()
    except Exception:
        # A record whose arguments do not fit its template: leave it to the handler's own error report.
        return
    # The text goes in as the one argument of a plain template, so formatting it again (by any handler, any
    # number of times) gives the same line; a '%' in the text cannot be taken for a placeholder.
    record.msg = "%s"
    record.args = (f"{message} [{suppressed} similar lines suppressed in the last {seconds:.0f} s]",)
    # Structured handlers can read the count without parsing the text.
    record.__dict__["suppressed"] = suppressed


@dataclass
class InstalledRateLimit:
    """A :class:`RateLimitFilter` attached to loggers; :meth:`remove` detaches it again."""

    filter: RateLimitFilter
    loggers: list[logging.Logger] = field(default_factory=list)

    def remove(self) -> None:
        """Detach the filter from every logger it was attached to."""
        for logger in self.loggers:
            logger.removeFilter(self.filter)
        self.loggers.clear()


def install_log_rate_limit(
    interval_s: float = DEFAULT_INTERVAL_S,
    *,
    names: Iterable[str] = DEFAULT_LOGGERS,
    min_level: int = logging.WARNING,
) -> InstalledRateLimit:
    """Attach one :class:`RateLimitFilter` to the loggers `names` and every existing logger below them.

    Loggers created after the call are not covered (modules create theirs at import), so call it after
    importing the worker (faust, aiokafka and streams.worker.app).
    """
    installed = InstalledRateLimit(RateLimitFilter(interval_s, min_level=min_level))
    prefixes = tuple(names)
    existing = list(logging.root.manager.loggerDict)
    for name in sorted({*prefixes, *(n for n in existing if n.startswith(tuple(f"{p}." for p in prefixes)))}):
        # getLogger also turns a placeholder (a parent known only through its children) into a logger.
        logger = logging.getLogger(name)
        logger.addFilter(installed.filter)
        installed.loggers.append(logger)
    return installed
