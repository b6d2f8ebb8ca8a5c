"""Start-up of ``profilestream feedback``: join the group, serve /metrics, count until stopped."""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, start_http_server

from streams.client.security import kafka_client_options
from streams.client.stopping import stop_on_signals
from streams.feedback.consumer import FeedbackConsumer
from streams.feedback.metrics import FeedbackMetrics
from streams.settings import Settings

log = logging.getLogger(__name__)


def feedback_group(settings: Settings) -> str:
    """The feedback consumers' group id: one group per deployment (app id)."""
    return f"{settings.app_id}-feedback"


def run_feedback(
    settings: Settings, stop: threading.Event | None = None, registry: CollectorRegistry | None = None
) -> int:
    """Count impressions and clicks until SIGINT/SIGTERM (or ``stop``); 0 after a stop, 2 when a topic is missing.

    ``registry``: given by tests that read the metrics in process; otherwise a fresh one is served over HTTP."""
    stop = stop_on_signals(stop)
    serve = registry is None
    registry = registry or CollectorRegistry()
    metrics = FeedbackMetrics(registry)
    try:
        consumer = FeedbackConsumer(
            settings.kafka_bootstrap,
            metrics,
            group_id=feedback_group(settings),
            topic_prefix=settings.topic_prefix,
            window_ms=int(settings.feedback_attribution_window_s * 1000),
            **kafka_client_options(settings),
        )
    except RuntimeError as exc:  # a topic is missing
        log.error("cannot start: %s", exc)
        return 2
    if serve:
        start_http_server(settings.feedback_port, settings.feedback_bind, registry)
        log.info("metrics on http://%s:%d/metrics", settings.feedback_bind, settings.feedback_port)
    try:
        while not stop.is_set():
            consumer.poll_once()
    finally:
        consumer.close()
    return 0
