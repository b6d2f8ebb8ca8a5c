"""Helpers of the worker processes the benchmarks and the tests start."""

from __future__ import annotations

import socket
from pathlib import Path

from bench.procs import free_port


def test_free_ports_are_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = {free_port() for _ in range(20)}
    for port in ports:
        assert not low <= port <= high
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
