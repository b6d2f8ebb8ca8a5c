"""The live probe's pure parts: which process is which, broker thread groups, core shares, the latency series
(modules the tests import without the benchmark's extra packages)."""

from __future__ import annotations

import math

import numpy as np

from bench.freshness import PhaseLatencies, latency_series
from bench.proc_cpu import broker_thread_group, core_shares, process_label

ME = 1000


def test_processes_are_told_apart_by_command_line_and_parent() -> None:
    java = "java -Xmx512m -cp /x/libs/* kafka.Kafka /x/config/server.properties"
    spawned = "python -B -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=12)"
    assert process_label(java, 5, 1, ME) == "broker"
    assert process_label("/v/bin/python -m streams.cli worker ", 6, ME, ME) == "worker"
    assert process_label(spawned, 7, ME, ME) == "paced load"
    assert process_label("python whatever", ME, 1, ME) == "benchmark (profile reader)"
    # Another user's spawned child, and the resource tracker, are not the paced load.
    assert process_label(spawned, 8, 42, ME) is None
    assert process_label("python -c from multiprocessing.resource_tracker import main", 9, ME, ME) is None


def test_broker_threads_are_grouped_by_name_prefix() -> None:
    assert broker_thread_group("data-plane-kafk") == "network and request handlers"
    assert broker_thread_group("C2 CompilerThre") == "JIT compiler"
    assert broker_thread_group("GC Thread#0") == "garbage collector"
    assert broker_thread_group("kafka-scheduler") == "other threads"


def test_core_shares_are_cpu_seconds_over_wall_seconds_largest_first() -> None:
    before = {"worker": 10.0, "broker": 5.0, "gone": 1.0}
    after = {"worker": 18.0, "broker": 11.0, "new": 3.0}
    assert core_shares(before, after, 10.0) == {"worker": 0.8, "broker": 0.6}


def test_the_series_bins_events_by_send_time_from_the_first() -> None:
    sent = np.array([5_000, 5_100, 5_900, 6_000, 7_500], dtype=np.int64)
    read = np.array([30.0, 40.0, 50.0, 900.0, math.nan])
    made = read - 10
    rows = latency_series(PhaseLatencies(sent_ms=sent, read=read, made=made), bin_ms=1_000)
    assert [(r.start_s, r.events) for r in rows] == [(0.0, 3), (1.0, 1)]  # the third bin has no covered event
    assert (rows[0].made_p50_ms, rows[0].made_p99_ms, rows[0].read_p99_ms) == (30.0, 40.0, 50.0)
    assert rows[1].read_p99_ms == 900.0
