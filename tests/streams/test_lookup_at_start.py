"""The lookup in a worker's first moments, against the real broker: before faust's router can hash a key to its
partition, a lookup is "not ready" (503), never a server error (500)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer

from streams.settings import Settings
from streams.worker.faust_seam import keys_placeable
from tests.harness import WorkerProcess

pytestmark = pytest.mark.kafka
LOOKUP_UNTIL_S = 60.0


def _status(settings: Settings, user_id: str) -> tuple[int, bytes]:
    """Status and body of one lookup (status 0: nothing listens yet)."""
    url = f"http://127.0.0.1:{settings.web_port}/profiles/{user_id}/"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""


def test_a_fresh_worker_answers_not_ready_until_it_can_place_keys_never_a_server_error(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    statuses: Counter[int] = Counter()
    bodies: dict[int, bytes] = {}
    deadline = time.monotonic() + LOOKUP_UNTIL_S
    # Asked as fast as one client can from the worker's start: the window before faust first refreshes its
    # producer's metadata lasted tens of milliseconds when it was measured.
    while statuses[404] == 0 and time.monotonic() < deadline:
        status, body = _status(settings, "nobody")
        statuses[status] += 1
        bodies.setdefault(status, body)
        assert worker.alive(), f"the worker stopped: {worker.log_tail()}"
    assert statuses[404] > 0, f"no worker answered an unknown user as unknown within {LOOKUP_UNTIL_S:.0f} s"
    assert set(statuses) <= {0, 503, 404}, f"{dict(statuses)}: {bodies}"
    if statuses[503]:
        assert json.loads(bodies[503]) == {"error": "not_ready"}


def test_keys_become_placeable_once_the_producer_tracks_the_changelog_topic(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    # An existing topic this producer never sent to stands for the changelog before the worker's first write.
    table = SimpleNamespace(changelog_topic=SimpleNamespace(get_topic_name=lambda: settings.topic("events.browse")))

    async def scenario() -> tuple[bool, bool]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
            before = keys_placeable(app, table)
            deadline = time.monotonic() + 30
            while not keys_placeable(app, table) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return before, keys_placeable(app, table)
        finally:
            await producer.stop()

    before, after = asyncio.run(scenario())
    assert (before, after) == (False, True)


def test_keys_are_not_placeable_before_faust_s_producer_starts() -> None:
    import faust.exceptions

    def not_started() -> None:
        raise faust.exceptions.NotReady("Producer service not yet started")

    app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=not_started))
    assert keys_placeable(app, SimpleNamespace()) is False
