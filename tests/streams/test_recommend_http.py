"""The recommender's HTTP interface on a real socket: answers, clear errors for bad input, metrics without ids."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from streams.contract.items import ItemsManifest, ItemVector, item_key, manifest_key
from streams.contract.profile import ProfileUpdated
from streams.recommend.http import BadRequestError, parse_k, start_server
from streams.recommend.metrics import RecommendMetrics
from streams.recommend.service import Recommender


@pytest.fixture
def served() -> Iterator[tuple[str, Recommender, CollectorRegistry]]:
    recommender = Recommender()
    vectors = np.random.default_rng(5).standard_normal((40, 4)).astype(np.float32)
    for i, row in enumerate(vectors):
        recommender.catalog.apply(
            item_key("m1", f"item-{i}"), ItemVector("m1", f"item-{i}", i, row.tolist()).to_bytes()
        )
    recommender.catalog.apply(manifest_key("m1"), ItemsManifest("m1", 4, 40, 1).to_bytes())
    recommender.profiles_changed([ProfileUpdated("user/ü 1", 1, "m1", [0.5, 0.5, 0.5, 0.5], 1, 1, 1)])
    registry = CollectorRegistry()
    server = start_server(recommender, RecommendMetrics(registry), registry, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recommender, registry
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_known_user_is_answered_with_k_scored_items(served: tuple[str, Recommender, CollectorRegistry]) -> None:
    base, _, _ = served
    status, body = _get(f"{base}/recommendations/user%2F%C3%BC%201?k=7")
    answer = json.loads(body)
    assert status == 200
    assert answer["user_id"] == "user/ü 1" and answer["source"] == "profile" and answer["model_version"] == "m1"
    assert len(answer["items"]) == 7
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True)


def test_an_unknown_user_gets_the_fallback_and_it_is_counted(
    served: tuple[str, Recommender, CollectorRegistry],
) -> None:
    base, _, registry = served
    status, body = _get(f"{base}/recommendations/nobody")
    assert status == 200
    answer = json.loads(body)
    assert answer["source"] == "popular" and answer["fallback_reason"] == "unknown_user"
    assert len(answer["items"]) == 20
    assert registry.get_sample_value("profilestream_recommend_fallbacks_total", {"reason": "unknown_user"}) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/recommendations/u?k=0",
        "/recommendations/u?k=abc",
        "/recommendations/?k=3",
        "/recommendations/%FF",
        "/recommendations/%20%20",  # blank: no event could carry it
        "/recommendations/" + "x" * 257,  # longer than the contract's 256 characters
    ],
)
def test_bad_requests_get_400_and_the_service_goes_on(
    served: tuple[str, Recommender, CollectorRegistry], path: str
) -> None:
    base, _, registry = served
    status, body = _get(base + path)
    assert status == 400 and "error" in json.loads(body)
    assert registry.get_sample_value("profilestream_recommend_requests_total", {"outcome": "bad_request"}) == 1
    assert _get(f"{base}/recommendations/nobody")[0] == 200


def test_a_user_id_in_raw_utf8_is_refused_not_read_as_latin1(
    served: tuple[str, Recommender, CollectorRegistry],
) -> None:
    # Clients must percent-encode; the server reads the request line as Latin-1, where "é" would become "Ã©".
    host, port = served[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall("GET /recommendations/usér HTTP/1.0\r\n\r\n".encode())
        answer = b"".join(iter(lambda: conn.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.0 400") and b"percent-encoded" in answer


def test_metrics_are_served_and_carry_no_user_id(served: tuple[str, Recommender, CollectorRegistry]) -> None:
    base, _, _ = served
    _get(f"{base}/recommendations/user%2F%C3%BC%201")
    status, body = _get(f"{base}/metrics")
    text = body.decode()
    assert status == 200
    assert "profilestream_recommend_request_seconds_bucket" in text
    assert "user/" not in text and "%2F" not in text


def test_unknown_paths_are_404(served: tuple[str, Recommender, CollectorRegistry]) -> None:
    assert _get(f"{served[0]}/table/x/")[0] == 404


def test_head_answers_the_health_check_and_other_methods_get_405(
    served: tuple[str, Recommender, CollectorRegistry],
) -> None:
    def ask(method: str, path: str) -> urllib.response.addinfourl | urllib.error.HTTPError:
        request = urllib.request.Request(f"{served[0]}{path}", method=method)
        try:
            answer: urllib.response.addinfourl = urllib.request.urlopen(request, timeout=10)
            return answer
        except urllib.error.HTTPError as error:
            return error

    with ask("HEAD", "/healthz") as health:
        assert health.status == 200
        assert health.read() == b""
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        with ask(method, "/recommendations/alice") as refused:
            assert refused.status == 405
            assert refused.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(("query", "k"), [("", 20), ("k=5", 5), ("k=1&k=200", 200)])
def test_parse_k(query: str, k: int) -> None:
    assert parse_k(query) == k


@pytest.mark.parametrize("query", ["k=", "k=201", "k=-3", "k=2.5", "k=%D9%A5", "k=1_0", "k=+5", "k=%205"])
def test_parse_k_refuses(query: str) -> None:
    with pytest.raises(BadRequestError):
        parse_k(query)


def test_a_connection_that_never_finishes_its_request_is_closed() -> None:
    registry = CollectorRegistry()
    server = start_server(Recommender(), RecommendMetrics(registry), registry, "127.0.0.1", 0, idle_timeout_s=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as stalled:
            stalled.sendall(b"GET /recommendations/u")  # half a request line, then nothing
            # The server gives up on it (end of stream) instead of holding its thread until the client goes.
            assert stalled.recv(1024) == b""
    finally:
        server.shutdown()
        server.server_close()


def test_connections_past_the_cap_are_answered_busy_and_the_server_recovers() -> None:
    # Each connection holds a thread: clients that open connections and leave them idle would otherwise make
    # one thread each, without limit.
    registry = CollectorRegistry()
    server = start_server(Recommender(), RecommendMetrics(registry), registry, "127.0.0.1", 0, max_connections=3)
    address = ("127.0.0.1", server.server_address[1])
    try:
        # Three clients connect and send nothing: each holds a thread until the idle timeout.
        held = [socket.create_connection(address, timeout=10) for _ in range(3)]
        with socket.create_connection(address, timeout=10) as extra:
            answer = extra.recv(1024)
            assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer, answer
            assert answer.endswith(b'{"error":"busy"}\r\n')
        assert registry.get_sample_value("profilestream_recommend_connections_refused_total") == 1
        for connection in held:
            connection.close()
        # The slots come back as the held connections end: the next client is served.
        status, body = _eventually_served(f"http://{address[0]}:{address[1]}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
    finally:
        server.shutdown()
        server.server_close()


def _eventually_served(url: str, attempts: int = 100) -> tuple[int, bytes]:
    """The first answer other than 503 (a closed connection's thread frees its slot a moment after the close)."""
    for _ in range(attempts):
        status, body = _get(url)
        if status != 503:
            return status, body
        time.sleep(0.05)
    return status, body
