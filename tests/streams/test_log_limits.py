"""RateLimitFilter and its installation on loggers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from streams.worker.log_limits import RateLimitFilter, install_log_rate_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def collect() -> Iterator[Collect]:
    handler = Collect()
    logging.root.addHandler(handler)
    yield handler
    logging.root.removeHandler(handler)


@contextmanager
def logger_with(name: str, filter_: logging.Filter) -> Iterator[logging.Logger]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.addFilter(filter_)
    try:
        yield logger
    finally:
        logger.removeFilter(filter_)
        logger.setLevel(logging.NOTSET)


@pytest.fixture
def limited(clock: Clock) -> Iterator[logging.Logger]:
    with logger_with("test.log_limits.limited", RateLimitFilter(10.0, clock=clock)) as logger:
        yield logger


def test_the_same_template_passes_once_per_interval_and_reports_what_it_dropped(
    limited: logging.Logger, clock: Clock, collect: Collect
) -> None:
    for node in range(5):
        limited.error("Unable connect to node with id %s: %s", node, "refused")
        clock.now += 1.0
    assert collect.messages() == ["Unable connect to node with id 0: refused"]
    clock.now += 6.0  # 11 s after the first line
    limited.error("Unable connect to node with id %s: %s", 9, "refused")
    assert collect.messages()[1] == (
        "Unable connect to node with id 9: refused [4 similar lines suppressed in the last 11 s]"
    )
    assert collect.records[1].__dict__["suppressed"] == 4
    # The count starts again from the line just let through.
    clock.now += 10.0
    limited.error("Unable connect to node with id %s: %s", 9, "refused")
    assert collect.messages()[2] == "Unable connect to node with id 9: refused"


def test_other_templates_and_other_loggers_are_counted_apart(clock: Clock, collect: Collect) -> None:
    limit = RateLimitFilter(10.0, clock=clock)
    with logger_with("test.log_limits.a", limit) as a, logger_with("test.log_limits.b", limit) as b:
        a.warning("metadata update failed")
        a.warning("heartbeat failed")
        b.warning("metadata update failed")
        a.warning("metadata update failed")
        assert collect.messages() == ["metadata update failed", "heartbeat failed", "metadata update failed"]
        assert limit.pending() == 1


def test_records_below_the_minimum_level_always_pass(limited: logging.Logger, collect: Collect) -> None:
    for partition in range(3):
        limited.info("expired %d idle users in partition %d", 5, partition)
    assert len(collect.records) == 3


def test_a_record_whose_arguments_do_not_fit_is_left_alone(limited: logging.Logger, clock: Clock) -> None:
    limit = limited.filters[0]
    assert isinstance(limit, RateLimitFilter)
    bad = logging.LogRecord(limited.name, logging.ERROR, __file__, 1, "%d items", ("x",), None)
    assert limit.filter(bad)
    assert not limit.filter(bad)
    clock.now += 60
    assert limit.filter(bad)  # annotating it would raise: it passes unchanged, with its own error
    assert bad.msg == "%d items"


def test_the_key_table_is_bounded(clock: Clock) -> None:
    limit = RateLimitFilter(10.0, max_keys=3, clock=clock)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, None, None)

    for msg in ("a", "b", "c", "d"):
        assert limit.filter(record(msg))
    assert limit.filter(record("a"))  # forgotten as the least recently seen, so it passes again
    assert not limit.filter(record("d"))


def test_the_filter_is_thread_safe(clock: Clock) -> None:
    limit = RateLimitFilter(10.0, clock=clock)
    passed: list[bool] = []

    def log_many() -> None:
        for _ in range(2000):
            passed.append(limit.filter(logging.LogRecord("x", logging.ERROR, __file__, 1, "same", None, None)))

    threads = [threading.Thread(target=log_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert passed.count(True) == 1
    assert limit.pending() == 7999


def test_install_covers_existing_child_loggers_and_can_be_removed(collect: Collect) -> None:
    child = logging.getLogger("test_rate_root.conn.deep")  # "test_rate_root" itself exists only as a placeholder
    child.setLevel(logging.DEBUG)
    installed = install_log_rate_limit(60.0, names=["test_rate_root"])
    try:
        for _ in range(3):
            child.error("connection lost")
            logging.getLogger("test_rate_root").error("root of it")
        assert collect.messages() == ["connection lost", "root of it"]
        assert {logger.name for logger in installed.loggers} == {
            "test_rate_root",
            "test_rate_root.conn",
            "test_rate_root.conn.deep",
        }
    finally:
        installed.remove()
    child.error("connection lost")
    assert collect.messages()[-1] == "connection lost"
    assert len(collect.records) == 3
    child.setLevel(logging.NOTSET)


def test_install_defaults_cover_the_kafka_clients_faust_and_ours() -> None:
    # The loggers exist once their modules are imported (as the worker has done when it installs the filter).
    import aiokafka.conn
    import faust

    import streams.worker.lag_monitor

    assert aiokafka.conn and faust and streams.worker.lag_monitor

    installed = install_log_rate_limit()
    try:
        names = {logger.name for logger in installed.loggers}
        assert {"aiokafka", "aiokafka.conn", "faust", "mode", "streams", "streams.worker.lag_monitor"} <= names
    finally:
        installed.remove()
    assert not logging.getLogger("aiokafka.conn").filters


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimitFilter(0)
