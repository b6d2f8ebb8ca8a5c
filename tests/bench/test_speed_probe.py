"""The report's line on how fast the machine ran through the suite (bench.speed_probe)."""

from __future__ import annotations

import math

import torch

from bench.speed_probe import speed_line, speed_probe


def test_each_reading_is_shown_as_a_multiple_of_the_first() -> None:
    line = speed_line([("throughput", 0.10), ("freshness", 0.135), ("end", 0.10)])

    assert line.startswith("throughput 1.00x, freshness 1.35x, end 1.00x")
    assert "the first took 100 ms" in line


def test_no_readings_say_so() -> None:
    assert speed_line([]) == "not measured"


def test_the_probe_folds_with_one_torch_thread_and_gives_the_callers_back() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seconds = speed_probe()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert math.isfinite(seconds) and seconds > 0.0  # a reading, whatever the machine's speed
