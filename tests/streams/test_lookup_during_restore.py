"""The lookup while a worker restores its state from the changelog, against the real broker: a user the worker
has not read back yet is "not ready" (503), never "unknown" (404), which a consumer would take for a new user."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from streams.contract.events import BrowseEvent, Event
from streams.settings import Settings
from tests.harness import ProfileLog, WorkerProcess, expected_counts, send_events, wait_until

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000
USERS = 20_000


def _lookup(settings: Settings, user_id: str) -> tuple[int, dict[str, object], str | None]:
    """Status, JSON body and Retry-After of one lookup (status 0: nothing answered yet)."""
    url = f"http://127.0.0.1:{settings.web_port}/profiles/{user_id}/"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), answer.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers.get("Retry-After")
    except (urllib.error.URLError, ConnectionError):
        return 0, {}, None


def test_a_user_not_yet_restored_is_not_ready_rather_than_unknown(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    events: list[Event] = [
        BrowseEvent(event_id=f"e{n}", user_id=f"user-{n}", ts_ms=T0 + n, item_id=f"i{n % 97}") for n in range(USERS)
    ]
    log = ProfileLog(settings)
    worker = start_worker(settings)
    send_events(settings, events)
    log.wait_caught_up(expected_counts(events), 180, "every user's profile", workers=(worker,))
    assert worker.stop() == 0
    # A new disk: the next worker reads every record back from the changelog before it owns its partitions.
    shutil.rmtree(settings.state_dir)
    worker = start_worker(settings, name="restoring")
    wanted = f"user-{USERS - 1}"
    answers: list[tuple[int, dict[str, object], str | None]] = []

    def found() -> bool:
        answers.append(_lookup(settings, wanted))
        time.sleep(0.01)
        return answers[-1][0] == 200

    wait_until(found, 180, "the restored user's profile", workers=(worker,))
    statuses = {status for status, _, _ in answers}
    assert 404 not in statuses, f"a stored user was looked up as unknown during the restore: {sorted(statuses)}"
    not_ready = [(body, retry) for status, body, retry in answers if status == 503]
    assert all(body == {"error": "not_ready"} and retry for body, retry in not_ready), not_ready[:3]
    # Once the restore is over (the other partitions may still be reading when this user is found), an unknown
    # user is unknown again.
    wait_until(lambda: _lookup(settings, "nobody")[:2] == (404, {"error": "not_found"}), 60, "an unknown user's 404",
               workers=(worker,))  # fmt: skip
