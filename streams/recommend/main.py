"""Start-up of ``profilestream recommend``: read the topics to their end, then serve and follow until stopped."""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry

from streams.client.producer import EventProducer
from streams.client.stopping import stop_on_signals
from streams.recommend.coverage import Coverage
from streams.recommend.follower import Follower
from streams.recommend.http import start_server
from streams.recommend.impressions import MAX_BLOCK_MS, ImpressionWriter
from streams.recommend.metrics import RecommendMetrics
from streams.recommend.service import Recommender
from streams.settings import Settings

log = logging.getLogger(__name__)


def run_recommender(settings: Settings, stop: threading.Event | None = None) -> int:
    """Bootstrap from the compacted topics, serve HTTP, follow the topics until SIGINT/SIGTERM (or ``stop``).

    Returns 0 after a stop, 2 when a topic is missing or cannot be read to its end in time (logged)."""
    stop = stop_on_signals(stop)
    registry = CollectorRegistry()
    metrics = RecommendMetrics(registry)
    recommender = Recommender(Coverage(settings.recommend_coverage_window_s))
    try:
        follower = Follower.from_settings(settings, recommender, metrics)
    except RuntimeError as exc:  # a topic is missing
        log.error("cannot start: %s", exc)
        return 2
    try:
        try:
            follower.bootstrap(settings.recommend_bootstrap_timeout_s)
        except TimeoutError as exc:
            log.error("cannot start: %s; raise PROFILESTREAM_RECOMMEND_BOOTSTRAP_TIMEOUT_S", exc)
            return 2
        with recommender.lock:
            versions = sorted(recommender.catalog.loaded)
            users = len(recommender.profiles)
        log.info("bootstrapped: %d profiles, model versions %s", users, versions or "none")
        impressions = ImpressionWriter(
            EventProducer.from_settings(settings, max_block_ms=MAX_BLOCK_MS, client_id="profilestream-recommend"),
            metrics,
        )
        server = start_server(
            recommender,
            metrics,
            registry,
            settings.recommend_bind,
            settings.recommend_port,
            shown=impressions.write,
            max_connections=settings.recommend_max_connections,
        )
        log.info("serving on http://%s:%d/recommendations/USER", settings.recommend_bind, settings.recommend_port)
        try:
            while not stop.is_set():
                follower.poll_once()
        finally:
            server.shutdown()
            server.server_close()
            impressions.close()
    finally:
        follower.close()
    return 0
