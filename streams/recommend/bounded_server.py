"""A threading HTTP server that serves at most a fixed number of connections at once.

The standard library's ``ThreadingHTTPServer`` starts a thread for every connection it accepts, without limit:
many clients, or one that opens connections and leaves them idle, make as many threads, each with its stack,
until the process runs out of memory or threads. Past the cap, this server answers a connection ``503`` with
``Retry-After`` from the accepting thread (one non-blocking send, so a client that does not read cannot hold
it) and closes it, and counts it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 18\r\n"
    b"\r\n"
    b'{"error":"busy"}\r\n'
)
"""What a connection past the cap gets: it fits any socket's send buffer, so one send delivers it or fails."""


class BoundedThreadingHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with at most ``max_connections`` connections served at once; ``on_refused`` is
    called (on the accepting thread) for each connection answered busy instead."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        max_connections: int,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._slots = threading.BoundedSemaphore(max_connections)
        self._on_refused = on_refused
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve ``request`` on a thread of its own if a slot is free, else answer it busy and close it."""
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started: it will not release the slot
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """The connection's thread: serve it, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        self._on_refused()
        try:
            request.setblocking(False)
            request.send(BUSY_ANSWER)
        except OSError:
            pass  # gone already, or its buffer full: closing is all that is left
        self.shutdown_request(request)
