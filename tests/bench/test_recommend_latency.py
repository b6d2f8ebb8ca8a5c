"""bench/recommend_latency.py's client: every scheduled request is sent and timed, failures are counted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from bench.recommend_latency import paced_requests
from streams.recommend.http import start_server
from streams.recommend.metrics import RecommendMetrics
from streams.recommend.service import Recommender


def test_paced_requests_sends_each_scheduled_request_once() -> None:
    registry = CollectorRegistry()
    metrics = RecommendMetrics(registry)
    server = start_server(Recommender(), metrics, registry, "127.0.0.1", 0)
    try:
        result = paced_requests(f"http://127.0.0.1:{server.server_address[1]}", 100, 40.0, 1.0, seed=1)
    finally:
        server.shutdown()
        server.server_close()
    assert result.errors == 0
    assert all(latency > 0 for latency in result.latencies_ms), "every request was timed"
    assert registry.get_sample_value("profilestream_recommend_requests_total", {"outcome": "ok"}) == 40


def test_a_server_that_is_gone_is_counted_as_errors() -> None:
    result = paced_requests("http://127.0.0.1:9", 100, 20.0, 0.5, seed=1)  # port 9 (discard): nothing listens
    assert result.errors == result.offered == 10  # 20 requests/s for half a second
