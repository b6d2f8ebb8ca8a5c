"""The worker's root logger keeps the level it is given: faust's terminal spinner would turn it to DEBUG."""

from __future__ import annotations

import logging

import faust
import pytest

from streams.worker.main import faust_worker


def _root_like() -> logging.Logger:
    """A stand-in for the root logger as mode leaves it before faust's hook runs: one handler, level WARNING."""
    logger = logging.Logger("root-like", logging.WARNING)
    logger.addHandler(logging.StreamHandler())
    return logger


@pytest.mark.parametrize("level", ["warning", "error"])
def test_the_root_logger_keeps_the_level_asked_for(level: str) -> None:
    worker = faust_worker(faust.App(f"logging-{level}"), level)
    logger = _root_like()

    worker.on_setup_root_logger(logger, logging.getLevelName(level.upper()))

    assert not logger.isEnabledFor(logging.DEBUG)
    assert logger.level == logging.WARNING
    assert [type(handler) for handler in logger.handlers] == [logging.StreamHandler]


def test_faust_own_worker_turns_debug_on_at_warning() -> None:
    """The trap :func:`faust_worker` avoids; if a faust upgrade drops it, this shows it (and the workaround can go)."""
    worker = faust.Worker(faust.App("logging-faust"), loglevel="warning", quiet=True)
    logger = _root_like()

    worker.on_setup_root_logger(logger, logging.WARNING)

    assert logger.isEnabledFor(logging.DEBUG)
