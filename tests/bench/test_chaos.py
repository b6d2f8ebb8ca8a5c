"""The chaos suite in small, inside ``make test``: a backlog with hostile messages, and a kill -9 with the state
directory lost. The whole suite is ``make chaos`` (bench/chaos, docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.chaos import scenarios
from bench.chaos.data import SMALL, EventFile, write_event_file
from bench.chaos.hostile import SMALL_KINDS
from bench.chaos.scenarios import ChaosContext
from streams.client.producer import now_ms
from streams.settings import Settings
from tests.harness import WorkerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def chaos(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> ChaosContext:
    """The suite's context on the test session's broker (no broker faults: the broker is shared)."""
    return ChaosContext(
        make_settings=lambda **overrides: make_settings(**{"embedding_dim": 16, **overrides}),
        spawn=lambda settings, name: start_worker(settings, name=name),
        workdir=tmp_path,
        drain_timeout_s=240.0,
    )


@pytest.fixture
def events(tmp_path: Path) -> EventFile:
    """2,000 events of 200 users over about 11 hours of event time."""
    return write_event_file(SMALL.anchored(now_ms()), tmp_path / "data")


def test_backlog_with_hostile_messages_loses_nothing_and_dead_letters_every_bad_message(
    chaos: ChaosContext, events: EventFile
) -> None:
    """(a) and (e): every event is on the broker before the worker starts, the three topics race hours apart in
    event time, and hostile messages sit among the valid ones, some aimed at real users."""
    result = scenarios.backlog(chaos, events, hostile_kinds=SMALL_KINDS, name="backlog-hostile")
    assert result.hostile.kinds == len(SMALL_KINDS)
    problems = result.problems()
    assert not problems, "\n".join(problems)
    assert result.dead.too_late == 0


def test_kill_9_and_a_lost_state_directory_lose_nothing_and_apply_nothing_twice(
    chaos: ChaosContext, events: EventFile
) -> None:
    """(b): the worker is killed while it drains and its state directory deleted; the next one restores the state
    from the changelog and goes on from the committed offsets."""
    result = scenarios.kills(chaos, events, kills=1, wipe_at=1, max_delay_s=0.0)
    assert result.worker_kills == 1
    problems = result.problems()
    assert not problems, "\n".join(problems)
