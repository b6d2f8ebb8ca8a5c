"""The worker against the real broker: bad input, two workers rebalancing, and a model that cannot load."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import CoordinatorNotAvailableError

from bench.procs import free_port
from streams.client.producer import EventProducer
from streams.contract.events import BrowseEvent, Event, PurchaseEvent, event_to_dict
from streams.contract.profile import ProfileUpdated
from streams.contract.topics import DEADLETTER
from streams.settings import Settings
from streams.worker.lookup import FORWARDED_HEADER
from tests.harness import ProfileLog, WorkerProcess, demo_events, expected_counts, send_events, wait_until

pytestmark = pytest.mark.kafka
TS = 1_767_225_600_000


def _purchase(**changes: object) -> bytes:
    event = PurchaseEvent(event_id="bad", user_id="u-bad", ts_ms=TS, item_id="i", quantity=1, price=1.0, currency="EUR")
    obj = {**event_to_dict(event), **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not None}).encode()


# (topic type, key, value, expected reason)
BAD_INPUT: list[tuple[str, bytes | None, bytes, str]] = [
    ("browse", b"u-bad", b"not json at all", "not_json"),
    ("browse", b"u-bad", b"\xc3\x28", "not_utf8"),
    ("search", b"u-bad", b'"a string"', "not_object"),
    ("purchase", b"u-bad", _purchase(quantity="two"), "wrong_type"),
    ("purchase", b"u-bad", _purchase(item_id=None), "missing_field"),
    ("purchase", b"u-bad", _purchase(type="click"), "unknown_event_type"),
    ("purchase", b"someone-else", _purchase(), "key_mismatch"),
    ("purchase", b"u-bad", _purchase(quantity=-3), "invalid_value"),
    ("browse", b"u-bad", _purchase(), "type_topic_mismatch"),
    ("purchase", b"u-bad", _purchase(schema=7), "unsupported_schema"),
    ("purchase", None, _purchase(), "missing_key"),
    ("purchase", b"u-bad", _purchase(ts=1_767_225_600), "ts_out_of_range"),
]


def _dead_letters(settings: Settings, expected: int, timeout_s: float = 60) -> list[dict[str, object]]:
    consumer = KafkaConsumer(
        settings.topic(DEADLETTER),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    letters: list[dict[str, object]] = []
    try:

        def collect() -> bool:
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    letters.append({"key": r.key, "value": r.value, **{k: v.decode() for k, v in r.headers}})
            return len(letters) >= expected

        wait_until(collect, timeout_s, f"{expected} dead letters")
    finally:
        consumer.close()
    return letters


def test_bad_input_goes_to_the_dead_letter_topic_and_the_worker_goes_on(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as producer:
        for topic_type, key, value, _ in BAD_INPUT:
            producer.send_raw(value, key=key, topic_type=topic_type)
        producer.flush()
    good: list[Event] = [
        BrowseEvent(event_id=f"good-{i}", user_id=f"u-good-{i % 5}", ts_ms=TS + i, item_id=f"item-{i}")
        for i in range(50)
    ]
    send_events(settings, good)
    log = ProfileLog(settings)
    log.wait_caught_up(expected_counts(good), 90, "profiles of the good events sent after the bad ones")

    letters = _dead_letters(settings, len(BAD_INPUT))
    assert sorted(str(x["ps.reason"]) for x in letters) == sorted(b[3] for b in BAD_INPUT)
    by_value = {(x["value"], str(x["ps.reason"])): x for x in letters}
    for topic_type, key, value, reason in BAD_INPUT:
        letter = by_value[(value, reason)]
        assert letter["key"] == key, "the original key travels unchanged"
        assert letter["ps.source.topic"] == settings.topic(f"events.{topic_type}")
        assert int(str(letter["ps.source.partition"])) >= 0
        assert int(str(letter["ps.source.offset"])) >= 0
        assert letter["ps.stage"] == "decode"
    assert worker.proc.poll() is None
    assert "u-bad" not in worker.log_text(), "no user id in the worker's log"


def test_two_workers_rebalance_without_losing_state(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    settings_a, settings_b = _two_workers_settings(make_settings, tmp_path)
    events = demo_events(users=200, count=4500, seed=21)
    log = ProfileLog(settings_a)

    worker_a = start_worker(settings_a, name="a")
    send_events(settings_a, events[:1500])
    log.wait_caught_up(expected_counts(events[:1500]), 120, "worker a alone")

    # A second worker joins: partitions move to it with their state, restored from the changelog.
    start_worker(settings_b, name="b")
    wait_until(lambda: _stable_members(settings_a) == 2, 90, "a stable group of two workers")
    send_events(settings_a, events[1500:3000])
    log.wait_caught_up(expected_counts(events[:3000]), 120, "both workers")

    # Either worker answers for every user: a lookup for a user the other one owns is forwarded there (to the
    # URL it advertises), and answers with that user's latest profile.
    for settings in (settings_a, settings_b):
        for user, updates in log.updates.items():
            with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/profiles/{user}/", timeout=30) as answer:
                looked_up = ProfileUpdated.from_bytes(answer.read(), key=user.encode())
            assert (looked_up.version, looked_up.event_count) == (updates[-1].version, updates[-1].event_count)

    # The first leaves: the second takes every partition, again with the state.
    assert worker_a.stop() == 0
    send_events(settings_a, events[3000:])
    log.wait_caught_up(expected_counts(events), 120, "worker b alone")
    for user, updates in log.updates.items():
        versions = [u.version for u in updates]
        assert versions == sorted(set(versions)), f"versions of {user} went backwards across the rebalance"


def _two_workers_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> tuple[Settings, Settings]:
    """Settings of two workers of one group on one machine: their own state directories and web ports."""
    settings_a = make_settings(state_dir=tmp_path / "state-a")
    return settings_a, settings_a.model_copy(update={"state_dir": tmp_path / "state-b", "web_port": free_port()})


def _two_workers_caught_up(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    users: int,
    count: int,
    *,
    seed: int,
) -> tuple[Settings, Settings, WorkerProcess, WorkerProcess, ProfileLog]:
    """Workers a and b in a stable group, every profile of ``count`` demo events of ``users`` users read back:
    both workers' settings, both workers and the profile log."""
    settings_a, settings_b = _two_workers_settings(make_settings, tmp_path)
    events = demo_events(users=users, count=count, seed=seed)
    log = ProfileLog(settings_a)
    worker_a = start_worker(settings_a, name="a")
    worker_b = start_worker(settings_b, name="b")
    wait_until(lambda: _stable_members(settings_a) == 2, 90, "a stable group of two workers")
    send_events(settings_a, events)
    log.wait_caught_up(expected_counts(events), 120, "both workers")
    return settings_a, settings_b, worker_a, worker_b, log


def _stable_members(settings: Settings) -> int:
    """Members of the worker group once it is stable after a rebalance, else 0."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        group = admin.describe_groups([settings.app_id])[settings.app_id]
    except CoordinatorNotAvailableError:
        return 0  # a fresh broker elects the group's coordinator when the first member asks for it
    finally:
        admin.close()
    return len(group["members"]) if group["group_state"] == "Stable" else 0


def test_worker_with_a_corrupt_checkpoint_fails_at_start_with_a_clear_message(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    worker = start_worker(make_settings(model_dir=broken))
    assert worker.proc.wait(timeout=120) == 3
    assert "cannot load the model" in worker.log_text()


def test_a_worker_stopped_during_a_rebalance_stops_cleanly(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # One worker leaves a group of two and the other is stopped as the rebalance that follows begins (a rolling
    # restart, or `make bench`'s two-process drain ending). The rebalance's callbacks must not wait for the
    # consumer thread that the stop is closing: faust then gives up on the task only after its 60 s timeout.
    _, _, worker_a, worker_b, _ = _two_workers_caught_up(make_settings, start_worker, tmp_path, 100, 1000, seed=22)

    assigned = worker_b.log_text().count(ASSIGNED_LINE)
    assert worker_a.stop() == 0
    # The stop arrives while worker b runs the new assignment's callbacks.
    wait_until(lambda: worker_b.log_text().count(ASSIGNED_LINE) > assigned, 60, "b's new assignment", poll_s=0.005)
    assert worker_b.stop(timeout_s=120) == 0
    assert "Task timed out" not in worker_b.log_text(), worker_b.log_tail()


ASSIGNED_LINE = "Executing _on_partitions_assigned"
"""faust's log line as a worker starts the callbacks of a new assignment."""


def test_a_lookup_forwarded_to_an_owner_that_died_is_not_ready_rather_than_a_server_error(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # Until the group notices that worker b is gone (the session timeout), worker a's router still forwards b's
    # users there; the refused connection was answered with a plain 500 and a traceback in a's log.
    settings_a, _, worker_a, worker_b, log = _two_workers_caught_up(
        make_settings, start_worker, tmp_path, 60, 300, seed=23
    )

    worker_b.kill()
    answers: list[tuple[int, str | None]] = []
    for user in log.updates:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{settings_a.web_port}/profiles/{user}/", timeout=30) as ok:
                answers.append((ok.status, None))
        except urllib.error.HTTPError as refused:
            answers.append((refused.code, refused.headers.get("Retry-After")))
    statuses = {status for status, _ in answers}
    assert statuses <= {200, 503}, answers
    assert 503 in statuses, "some users were b's: asked within the session timeout, they cannot be answered yet"
    assert all(retry == "1" for status, retry in answers if status == 503)
    assert "Traceback" not in worker_a.log_text(), worker_a.log_tail()


def test_a_forwarded_lookup_is_answered_by_its_owner_or_refused_never_forwarded_again(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # A request another worker forwarded carries the marker. If the views of the assignment of two workers
    # disagree (a rebalance in progress), forwarding it again could pass it around a loop; asked with the marker,
    # each worker answers its own users and refuses the others', so exactly one of the two answers each user.
    settings_a, settings_b, worker_a, worker_b, log = _two_workers_caught_up(
        make_settings, start_worker, tmp_path, 60, 300, seed=24
    )
    ports = (settings_a.web_port, settings_b.web_port)
    answers = {
        user: sorted(_lookup_status(port, user, {FORWARDED_HEADER: "1"}) for port in ports) for user in log.updates
    }
    assert all(statuses == [(200, None), (503, "1")] for statuses in answers.values()), answers
    # Unmarked, either worker answers every user (forwarding the other's once).
    assert {_lookup_status(port, user, {})[0] for port in ports for user in log.updates} == {200}
    for worker in (worker_a, worker_b):
        assert "Traceback" not in worker.log_text(), worker.log_tail()


def _lookup_status(port: int, user: str, headers: dict[str, str]) -> tuple[int, str | None]:
    """Status and ``Retry-After`` of a lookup of ``user`` at the worker listening on ``port``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/profiles/{user}/", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, None
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers.get("Retry-After")
