"""The recommender against the real broker: a worker's profiles are served with their own model's vectors,
purchases never come back, a profile of an unpublished model is not scored, and a restart bootstraps."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from bench.procs import free_port
from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import EncoderConfig
from models.training import TrainConfig, train
from streams.cli.main import main as cli_main
from streams.client.items import publish_item_vectors
from streams.client.producer import EventProducer
from streams.contract.events import Event, PurchaseEvent, encode_event
from streams.contract.profile import ProfileUpdated
from streams.contract.topics import PROFILES
from streams.offline.histories import read_histories
from streams.recommend.main import run_recommender
from streams.settings import Settings
from tests.harness import (
    ProfileLog,
    RecommenderThread,
    WorkerProcess,
    demo_events,
    expected_counts,
    send_events,
    wait_until,
)

pytestmark = pytest.mark.kafka
K = 50


def _trained_checkpoint(tmp_path: Path) -> str:
    """A small model trained on demo traffic, with item ids in its vocabulary (as `profilestream train` makes)."""
    events_file = tmp_path / "train.jsonl"
    events_file.write_bytes(b"".join(encode_event(e) + b"\n" for e in demo_events(users=60, count=1500, seed=40)))
    histories, _ = read_histories(events_file)
    model, metrics = train(
        [h for h in histories.inputs if h],
        TrainConfig(seed=3, epochs=1, batch_size=32, negatives=64, patience=1, num_threads=1),
        EncoderConfig(embedding_dim=16, hidden_dim=16),
        progress=False,
        item_ids=histories.item_ids(),
    )
    return save_checkpoint(model, tmp_path / "model", training_fingerprint="recommend-test", metrics=dict(metrics))


def _publish(settings: Settings, model_dir: Path) -> None:
    args = ["model", "publish", "--model", str(model_dir)]
    assert (
        cli_main([*args, "--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]) == 0
    )


def _expected(profile: ProfileUpdated, ids: list[str], vectors: np.ndarray, bought: set[str]) -> list[str]:
    """The exact top K of a profile against the model's own vectors, bought items left out."""
    scores = vectors @ np.asarray(profile.embedding, dtype=np.float32)
    order = [ids[i] for i in np.argsort(-scores, kind="stable")]
    return [item for item in order if item not in bought][:K]


def _purchases(events: list[Event]) -> dict[str, set[str]]:
    bought: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if isinstance(event, PurchaseEvent):
            bought[event.user_id].add(event.item_id)
    return bought


def _answers(recommender: RecommenderThread, users: list[str]) -> dict[str, dict[str, Any]]:
    return {user: recommender.get(f"/recommendations/{user}?k={K}")[1] for user in users}


def test_worker_profiles_are_served_with_their_models_vectors_and_purchases_never_come_back(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    version = _trained_checkpoint(tmp_path)
    settings = make_settings(model_dir=tmp_path / "model", recommend_port=free_port())
    _publish(settings, tmp_path / "model")
    model, _ = load_checkpoint(tmp_path / "model")
    ids = list(model.features.item_ids or ())
    vectors = model.item_vectors()[1:].numpy().astype(np.float32)

    recommender = RecommenderThread(settings)
    wait_until(recommender.ready, 60, "the recommender to start")
    events = demo_events(users=20, count=800, seed=41)
    bought = _purchases(events)
    users = sorted(expected_counts(events))
    log = ProfileLog(settings)
    worker = start_worker(settings)
    send_events(settings, events)
    log.wait_caught_up(expected_counts(events), 120, "every user's final profile", workers=(worker,))
    expected = {u: _expected(log.updates[u][-1], ids, vectors, bought[u]) for u in users}

    def served() -> bool:
        answers = _answers(recommender, users)
        return all([i["item_id"] for i in answers[u]["items"]] == expected[u] for u in users)

    wait_until(served, 60, "the recommender to serve every user's final profile", workers=(worker,))
    answers = _answers(recommender, users)
    assert {a["model_version"] for a in answers.values()} == {version}
    for user in users:
        profile = log.updates[user][-1]
        embedding = np.asarray(profile.embedding, dtype=np.float32)
        for item in answers[user]["items"]:
            assert item["score"] == pytest.approx(float(vectors[ids.index(item["item_id"])] @ embedding), abs=1e-5)
        assert not bought[user] & {i["item_id"] for i in answers[user]["items"]}
    # The exclusion is not vacuous: some bought item would have been among the top K without it.
    unexcluded = {u: set(_expected(log.updates[u][-1], ids, vectors, set())) for u in users}
    assert any(bought[u] & unexcluded[u] for u in users)
    assert worker.stop() == 0
    recommender.stop()

    # A new recommender holds everything after start-up alone: nothing new is sent.
    restarted = RecommenderThread(settings)
    wait_until(restarted.ready, 60, "the restarted recommender to start")
    assert {u: [i["item_id"] for i in a["items"]] for u, a in _answers(restarted, users).items()} == expected
    restarted.stop()


def test_a_profile_of_an_unpublished_model_version_is_not_scored(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    _trained_checkpoint(tmp_path)
    settings = make_settings(recommend_port=free_port())
    _publish(settings, tmp_path / "model")
    recommender = RecommenderThread(settings)
    wait_until(recommender.ready, 60, "the recommender to start")
    profile = ProfileUpdated("stranger", 1, "not-published-0001", [0.25] * 16, 1, 1, 1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.topic(PROFILES), key=b"stranger", value=profile.to_bytes()).get(timeout=30)
    producer.close()

    def fallback_for_no_index() -> bool:
        return bool(recommender.get("/recommendations/stranger?k=5")[1]["fallback_reason"] == "no_index")

    wait_until(fallback_for_no_index, 60, "the stranger's profile to be followed")
    status, answer = recommender.get("/recommendations/stranger?k=5")
    assert status == 200 and answer["source"] == "popular" and answer["model_version"] is None
    assert len(answer["items"]) == 5
    counted = re.search(r'profilestream_recommend_fallbacks_total\{reason="no_index"\} (\S+)', recommender.metrics())
    assert counted is not None and float(counted.group(1)) >= 2
    recommender.stop()


def test_a_profile_tombstone_ends_what_the_recommender_holds_of_the_user(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(recommend_port=free_port())
    vectors = np.random.default_rng(8).standard_normal((10, 4)).astype(np.float32)
    ids = [f"item-{i}" for i in range(10)]
    publish_item_vectors(settings.kafka_bootstrap, "m-small", ids, vectors.tolist(), topic_prefix=settings.topic_prefix)
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as events:
        events.purchase("leaver", "item-3", quantity=5)
        events.flush()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    profile = ProfileUpdated("leaver", 1, "m-small", [0.5, 0.5, 0.5, 0.5], 1, 1, 1)
    producer.send(settings.topic(PROFILES), key=b"leaver", value=profile.to_bytes()).get(timeout=30)
    recommender = RecommenderThread(settings)
    wait_until(recommender.ready, 60, "the recommender to start")
    status, answer = recommender.get("/recommendations/leaver?k=10")
    assert status == 200 and answer["source"] == "profile" and answer["model_version"] == "m-small"
    assert [i["item_id"] for i in answer["items"]] == [
        ids[i] for i in np.argsort(-(vectors @ np.full(4, 0.5, dtype=np.float32))) if i != 3
    ]

    producer.send(settings.topic(PROFILES), key=b"leaver", value=None).get(timeout=30)
    producer.close()

    def forgotten() -> bool:
        return bool(recommender.get("/recommendations/leaver?k=3")[1]["fallback_reason"] == "unknown_user")

    wait_until(forgotten, 60, "the tombstone to be followed")
    # The purchase went with the profile: the item is no longer excluded, and as the most bought it comes first
    # (one purchase of five units: purchases are counted, not units).
    assert recommender.get("/recommendations/leaver?k=3")[1]["items"][0] == {"item_id": "item-3", "score": 1.0}
    recommender.stop()


def test_missing_topics_end_start_up_with_a_clear_exit_code(kafka_bootstrap: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        kafka_bootstrap=kafka_bootstrap, topic_prefix="never-created.", recommend_port=free_port()
    )
    assert run_recommender(settings) == 2


def test_the_recommender_forgets_purchases_the_input_topics_retention_has_passed(
    make_settings: Callable[..., Settings],
) -> None:
    # With input_retention_ms set (the erasure bound's lever), a purchase must not outlive the topic in memory.
    from prometheus_client import CollectorRegistry

    from streams.recommend.follower import Follower
    from streams.recommend.metrics import RecommendMetrics
    from streams.recommend.service import Recommender

    retention_ms = 3_600_000
    settings = make_settings(input_retention_ms=retention_ms)
    now_ms = int(time.time() * 1000)
    purchases: list[Event] = [
        PurchaseEvent(event_id="old", user_id="u-1", ts_ms=now_ms - 2 * retention_ms, item_id="i-old", quantity=1),
        PurchaseEvent(event_id="new", user_id="u-1", ts_ms=now_ms - 60_000, item_id="i-new", quantity=1),
        PurchaseEvent(event_id="gone", user_id="u-2", ts_ms=now_ms - 3 * retention_ms, item_id="i-old", quantity=1),
    ]
    send_events(settings, purchases)
    registry = CollectorRegistry()
    recommender = Recommender()
    follower = Follower.from_settings(settings, recommender, RecommendMetrics(registry))
    try:
        follower.bootstrap(timeout_s=60.0)
    finally:
        follower.close()
    assert recommender.purchases.bought("u-1") == {"i-new"}
    assert recommender.purchases.bought("u-2") == frozenset() and recommender.purchases.users == 1
    assert registry.get_sample_value("profilestream_recommend_purchases_expired_total") == 2
