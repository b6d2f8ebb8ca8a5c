"""Impressions and clicks through the real broker: the recommender writes an impression for every answer, a
browse or purchase carrying its request id is joined with it, and CTR@k counts it; a restarted feedback consumer
attributes a click on an impression counted before the restart without counting the impression again."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from kafka import KafkaProducer

from bench.procs import free_port
from streams.client.items import publish_item_vectors
from streams.client.producer import EventProducer
from streams.contract.profile import ProfileUpdated
from streams.contract.topics import PROFILES
from streams.settings import Settings
from tests.harness import FeedbackThread, RecommenderThread, wait_until

pytestmark = pytest.mark.kafka
PARTITIONS = 4


def _sent_impressions(recommender: RecommenderThread) -> float:
    found = re.search(r'profilestream_recommend_impressions_total\{outcome="sent"\} (\S+)', recommender.metrics())
    return float(found.group(1)) if found else 0.0


def test_an_impression_and_its_clicks_flow_through_to_ctr(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(recommend_port=free_port(), partitions=PARTITIONS)
    vectors = np.random.default_rng(5).standard_normal((12, 4)).astype(np.float32)
    ids = [f"item-{i}" for i in range(12)]
    publish_item_vectors(settings.kafka_bootstrap, "m-fb", ids, vectors.tolist(), topic_prefix=settings.topic_prefix)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    profile = ProfileUpdated("clicker", 1, "m-fb", [0.5, 0.5, 0.5, 0.5], 1, 1, 1)
    producer.send(settings.topic(PROFILES), key=b"clicker", value=profile.to_bytes()).get(timeout=30)
    producer.close()

    recommender = RecommenderThread(settings)
    feedback = FeedbackThread(settings)
    wait_until(recommender.ready, 60, "the recommender to start")
    wait_until(lambda: feedback.value("assigned_partitions") == 3 * PARTITIONS, 60, "the feedback group to form")

    status, shown = recommender.get("/recommendations/clicker?k=5")
    assert status == 200 and shown["source"] == "profile" and len(shown["items"]) == 5
    status, popular = recommender.get("/recommendations/stranger?k=5")
    assert status == 200 and popular["source"] == "popular"
    assert shown["request_id"] != popular["request_id"]
    wait_until(lambda: _sent_impressions(recommender) == 2, 60, "both impressions to be acknowledged")
    profile_labels = {"model_version": "m-fb", "source": "profile"}
    wait_until(lambda: feedback.value("impressions_total", **profile_labels) == 1, 60, "the impression to be counted")
    assert feedback.value("impressions_total", model_version="none", source="popular") == 1
    assert feedback.value("clicked_impressions_total", k="5", **profile_labels) == 0

    # The user clicks the second item shown, then buys an item further down the same answer; another browse
    # names a request nobody served.
    second, fourth = shown["items"][1]["item_id"], shown["items"][3]["item_id"]
    with EventProducer.from_settings(settings) as events:
        events.browse("clicker", second, request_id=shown["request_id"])
        events.purchase("clicker", fourth, quantity=1, request_id=shown["request_id"])
        events.browse("clicker", "item-0", request_id="4f1e8a56-0000-4000-8000-000000000000")
        events.browse("clicker", second)  # not a click: no request id
        events.flush()

    def clicked() -> bool:
        return feedback.value("clicks_total", kind="purchase", **profile_labels) == 1 and (
            feedback.value("clicked_impressions_total", k="5", **profile_labels) == 1
        )

    wait_until(clicked, 60, "the clicks to reach CTR@5")
    assert feedback.value("clicks_total", kind="browse", **profile_labels) == 1
    assert feedback.value("clicked_impressions_total", k="1", **profile_labels) == 0
    assert feedback.value("clicked_impressions_total", k="10", **profile_labels) == 1
    assert feedback.value("clicked_impressions_total", k="5", model_version="none", source="popular") == 0
    wait_until(lambda: feedback.value("pending_clicks") == 1, 30, "the unknown request's click to wait")
    feedback.stop()

    # Restarted: the impression is held again (read from the window's start) but not counted a second time.
    restarted = FeedbackThread(settings)
    wait_until(lambda: restarted.value("held_impressions") == 2, 60, "the restarted consumer to hold the impressions")
    first = shown["items"][0]["item_id"]
    with EventProducer.from_settings(settings) as events:
        events.browse("clicker", first, request_id=shown["request_id"])
        events.flush()
    wait_until(
        lambda: restarted.value("clicked_impressions_total", k="1", **profile_labels) == 1, 60, "the click at rank 1"
    )
    assert restarted.value("impressions_total", **profile_labels) == 0
    assert restarted.value("clicked_impressions_total", k="5", **profile_labels) == 0  # counted before the restart
    restarted.stop()
    recommender.stop()
