"""Backfill against the real broker: backfill then stream equals stream from the beginning, per user, in the
state record and the profile; a re-run changes nothing; a live or used worker group is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from kafka.admin import KafkaAdminClient

from state.codec import decode_state
from state.record import UserState
from streams.cli.main import main
from streams.contract.events import BrowseEvent, Event, encode_event
from streams.contract.topics import PROFILES
from streams.settings import Settings
from streams.worker.backfill import BackfillRefusedError, changelog_topic, run_backfill
from streams.worker.encoder_runtime import EncoderRuntime
from tests.harness import (
    ProfileLog,
    WorkerProcess,
    demo_events,
    expected_counts,
    latest_values,
    send_events,
)

pytestmark = pytest.mark.kafka
# Small enough that most users outgrow the window, so the base vector and the evicted ids take part.
WORKER = {"embedding_dim": 16, "recent_window": 10}


def _write(events: list[Event], path: Path) -> Path:
    path.write_bytes(b"".join(encode_event(e) + b"\n" for e in events))
    return path


def _backfill_cli(settings: Settings, events_file: Path) -> int:
    return main(
        [
            "backfill",
            "--events",
            str(events_file),
            "--no-progress",
            "--kafka-bootstrap",
            settings.kafka_bootstrap,
            "--topic-prefix",
            settings.topic_prefix,
            "--app-id",
            settings.app_id,
            "--partitions",
            str(settings.partitions),
            "--embedding-dim",
            str(settings.embedding_dim),
            "--recent-window",
            str(settings.recent_window),
        ]
    )


def _states(settings: Settings) -> dict[str, UserState]:
    spec = settings.state_spec()
    values = latest_values(settings.kafka_bootstrap, changelog_topic(settings))
    return {key.decode(): decode_state(value, spec) for key, value in values.items() if value is not None}


def _assert_same_state(streamed: UserState, backfilled: UserState) -> None:
    """Equal but for the profile version (one per batch that touched the user: the backfill folds a history in
    one batch) and the input positions (the backfilled events never were on an input topic)."""
    for name in ("hidden", "base_hidden"):
        a, b = getattr(streamed, name), getattr(backfilled, name)
        assert a.shape == b.shape and float(np.max(np.abs(a - b), initial=0.0)) <= 1e-5, name
    for name in (
        "model_version",
        "base_known",
        "base_prev_ts_ms",
        "first_event_ms",
        "last_event_ms",
        "event_count",
        "recent",
        "evicted_ids",
        "aggregates",
    ):
        assert getattr(streamed, name) == getattr(backfilled, name), name


def test_backfill_then_stream_equals_stream_from_the_beginning(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    events = demo_events(users=30, count=2400, seed=61)
    history, live = events[:1600], events[1600:]
    expected = expected_counts(events)

    # The reference: one worker streams every event from the beginning.
    run = uuid.uuid4().hex[:8]
    reference = make_settings(
        **WORKER, topic_prefix=f"r{run}.", app_id=f"ps-ref-{run}", state_dir=tmp_path / "ref-state"
    )
    reference_log = ProfileLog(reference)
    worker = start_worker(reference, name="reference")
    send_events(reference, events)
    reference_log.wait_caught_up(expected, 120, "the reference's final profiles", workers=(worker,))
    assert worker.stop() == 0

    # Backfill the history (twice: a re-run before the worker's first start changes nothing), then stream the rest.
    settings = make_settings(**WORKER)
    history_file = _write(history, tmp_path / "history.jsonl")
    # A line dated decades ahead, which the worker would refuse: a bad line, not the clock by which every other
    # user would look idle and be skipped.
    with history_file.open("ab") as out:
        out.write(encode_event(BrowseEvent(event_id="f", user_id="from-the-future", ts_ms=4 * 10**12, item_id="i")))
        out.write(b"\n")
    assert _backfill_cli(settings, history_file) == 0
    assert _backfill_cli(settings, history_file) == 0
    log = ProfileLog(settings)
    log.wait_caught_up(expected_counts(history), 60, "every user's backfilled profile")
    assert all(u.version == 1 for updates in log.updates.values() for u in updates)
    worker = start_worker(settings, name="after-backfill")
    # The last history events sent again at the cut-over (an overlap): the worker's dedupe drops them.
    send_events(settings, history[-20:] + live)
    log.wait_caught_up(expected, 120, "every user's final profile after the backfill", workers=(worker,))

    # A live group is refused, and so is a group that has processed events once it stopped.
    encoder = EncoderRuntime.load(None, embedding_dim=16)
    with pytest.raises(BackfillRefusedError, match="live members"):
        run_backfill(settings, history_file, encoder)
    with pytest.raises(BackfillRefusedError, match="live members"):
        run_backfill(settings, history_file, encoder, force=True)  # never under running workers
    assert worker.stop() == 0
    with pytest.raises(BackfillRefusedError, match="committed input offsets"):
        run_backfill(settings, history_file, encoder)

    streamed, backfilled = _states(reference), _states(settings)
    assert sorted(streamed) == sorted(backfilled) == sorted(expected)
    for user in expected:
        _assert_same_state(streamed[user], backfilled[user])
        a, b = reference_log.updates[user][-1], log.updates[user][-1]
        assert (a.event_count, a.last_event_ts_ms, a.model_version) == (
            b.event_count,
            b.last_event_ts_ms,
            b.model_version,
        )
        assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=True)) <= 1e-5
        # For a consumer that read the backfill first, versions never go back; the re-run published version 1
        # again, with the same content.
        updates = log.updates[user]
        assert [u.version for u in updates] == [1, *range(1, len(updates))]
        assert replace(updates[0], updated_at_ms=0) == replace(updates[1], updated_at_ms=0)
    # The profile topic holds every user once compacted reading is done, with its final profile.
    profiles = latest_values(settings.kafka_bootstrap, settings.topic(PROFILES))
    assert sorted(k.decode() for k in profiles) == sorted(expected)
    # Told to, it writes over a used group (here: the history's state again, replacing the live one).
    forced = run_backfill(settings, history_file, encoder, force=True)
    assert forced.written == len(expected_counts(history))


def test_a_backfill_into_topics_that_do_not_exist_fails_in_one_line(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(**WORKER)
    history_file = _write(demo_events(users=3, count=20, seed=5), tmp_path / "history.jsonl")
    run = uuid.uuid4().hex[:8]
    missing = settings.model_copy(update={"topic_prefix": f"missing{run}.", "app_id": f"ps-missing-{run}"})
    assert _backfill_cli(missing, history_file) == 4
    err = capsys.readouterr().err
    assert "profilestream backfill: failed: RuntimeError: topic " in err and "does not exist" in err
    assert "Traceback" not in err and "run the same command again" in err
    # Checked before anything is made: no changelog topic of the missing prefix's app was created either.
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        assert changelog_topic(missing) not in set(admin.list_topics())
    finally:
        admin.close()


def test_a_backfill_with_another_partition_count_than_the_input_topics_is_refused_in_one_line(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(**WORKER)  # topics of 4 partitions
    history_file = _write(demo_events(users=3, count=20, seed=5), tmp_path / "history.jsonl")
    wrong = settings.model_copy(update={"partitions": 8, "app_id": f"ps-wrong-{uuid.uuid4().hex[:8]}"})
    assert _backfill_cli(wrong, history_file) == 4
    err = capsys.readouterr().err
    assert f"{settings.topic('events.browse')} has 4 partitions, --partitions says 8" in err
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        assert changelog_topic(wrong) not in set(admin.list_topics()), "refused before the changelog is made"
    finally:
        admin.close()
