"""The recommender's HTTP interface (standard library server, one thread per request).

- ``GET /recommendations/{user_id}?k=20``: JSON (:meth:`Recommendation.to_json`); 400 with ``{"error": ...}`` for
  a bad ``k``, or a user id that is not percent-encoded UTF-8 or that the event contract refuses (empty, blank,
  longer than 256 characters).
- ``GET /metrics``: Prometheus text format.
- ``GET /healthz``: 200 once the topics were read to their end at start-up (``HEAD`` too).
- Any other method: 405 with ``Allow: GET, HEAD``.

Request paths hold user ids, so the server logs no request lines; errors are logged without the path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.contract.decoder import id_problem
from streams.recommend.bounded_server import BoundedThreadingHTTPServer
from streams.recommend.metrics import RecommendMetrics
from streams.recommend.service import MAX_K, Recommendation, Recommender

log = logging.getLogger(__name__)

DEFAULT_K = 20
PREFIX = "/recommendations/"


class BadRequestError(ValueError):
    """The request cannot be answered as asked; the message is safe to return (it quotes no input)."""


def parse_k(query: str) -> int:
    """``k`` from a query string (default 20); raises :class:`BadRequestError` unless it is 1..MAX_K."""
    values = parse_qs(query, keep_blank_values=True).get("k")
    if not values:
        return DEFAULT_K
    raw = values[-1]
    # ASCII digits only: int() also reads other scripts' digits, signs, spaces and underscores.
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequestError("k must be an integer") from None
    k = int(raw)
    if not 1 <= k <= MAX_K:
        raise BadRequestError(f"k must be between 1 and {MAX_K}")
    return k


IDLE_TIMEOUT_S = 10.0
"""How long a connection may take to send a request, or stay open idle between requests, before it is closed."""
MAX_CONNECTIONS = 256
"""Connections served at once (a thread each); past it a connection is answered 503 ``busy`` and closed."""


def _handler(
    recommender: Recommender,
    metrics: RecommendMetrics,
    registry: CollectorRegistry,
    shown: Callable[[Recommendation], None] | None,
    idle_timeout_s: float,
) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "profilestream-recommend"
        # Each connection holds a thread: without a socket timeout, one that sends half a request line (or
        # nothing) held it for good, and enough of them would exhaust the process's threads.
        timeout = idle_timeout_s

        def log_message(self, format: str, *args: Any) -> None:
            """Silenced: request lines carry user ids."""

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif url.path == "/healthz":
                self._send(HTTPStatus.OK, b'{"status":"ok"}\n', "application/json")
            elif url.path.startswith(PREFIX):
                self._recommend(url.path[len(PREFIX) :], url.query)
            else:
                self._send(HTTPStatus.NOT_FOUND, orjson.dumps({"error": "not found"}), "application/json")

        def do_HEAD(self) -> None:
            # A health probe may ask with HEAD: the status and headers of GET /healthz, without the body.
            if urlsplit(self.path).path == "/healthz":
                self._send(HTTPStatus.OK, b"", "application/json")
            else:
                self._refuse_method()

        def do_POST(self) -> None:
            self._refuse_method()

        def do_PUT(self) -> None:
            self._refuse_method()

        def do_DELETE(self) -> None:
            self._refuse_method()

        def do_PATCH(self) -> None:
            self._refuse_method()

        def _refuse_method(self) -> None:
            body = orjson.dumps({"error": "only GET is served"})
            self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _recommend(self, segment: str, query: str) -> None:
            started = time.perf_counter()
            try:
                # One path segment; a user id holding "/" arrives percent-encoded (%2F).
                if not segment or "/" in segment:
                    raise BadRequestError("the path is /recommendations/{user_id} with a non-empty user id")
                if not segment.isascii():
                    # The server reads the request line as Latin-1: raw UTF-8 bytes would name another user.
                    raise BadRequestError("the user id must be percent-encoded UTF-8")
                user_id = unquote(segment, errors="strict")
                problem = id_problem(user_id)
                if problem is not None:
                    # No event could carry this id, so no profile has it; its impression would be refused too.
                    raise BadRequestError(problem)
                answer = recommender.recommend(user_id, parse_k(query))
            except UnicodeDecodeError:
                metrics.requests.labels("bad_request").inc()
                self._send(HTTPStatus.BAD_REQUEST, b'{"error":"the user id is not UTF-8"}', "application/json")
                return
            except BadRequestError as exc:
                metrics.requests.labels("bad_request").inc()
                self._send(HTTPStatus.BAD_REQUEST, orjson.dumps({"error": str(exc)}), "application/json")
                return
            except Exception as exc:  # a bug must cost one request, never the service
                metrics.requests.labels("error").inc()
                log.exception("recommendation failed with %s", type(exc).__name__)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b'{"error":"internal error"}', "application/json")
                return
            metrics.request_seconds.observe(time.perf_counter() - started)
            metrics.requests.labels("ok").inc()
            if answer.fallback is not None:
                metrics.fallbacks.labels(answer.fallback.value).inc()
            self._send(HTTPStatus.OK, orjson.dumps(answer.to_json()), "application/json")
            if shown is not None:
                shown(answer)  # the impression, after the answer left: it never delays it

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def start_server(
    recommender: Recommender,
    metrics: RecommendMetrics,
    registry: CollectorRegistry,
    bind: str,
    port: int,
    *,
    shown: Callable[[Recommendation], None] | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> BoundedThreadingHTTPServer:
    """Serve in a daemon thread; the caller stops it with ``shutdown()``. ``shown`` is called with every answer
    after it was sent (the impression writer); a connection silent for ``idle_timeout_s`` is closed, and one past
    ``max_connections`` open at once is answered 503 and counted (``connections_refused``)."""
    server = BoundedThreadingHTTPServer(
        (bind, port),
        _handler(recommender, metrics, registry, shown, idle_timeout_s),
        max_connections,
        on_refused=metrics.connections_refused.inc,
    )
    threading.Thread(target=server.serve_forever, name="recommend-http", daemon=True).start()
    return server
