"""The report's line on how fast the machine ran through the suite (bench.speed_probe)."""

from __future__ import annotations

from bench.speed_probe import speed_line


def test_each_reading_is_shown_as_a_multiple_of_the_first() -> None:
    line = speed_line([("throughput", 0.10), ("freshness", 0.135), ("end", 0.10)])

    assert line.startswith("throughput 1.00x, freshness 1.35x, end 1.00x")
    assert "the first took 100 ms" in line


def test_no_readings_say_so() -> None:
    assert speed_line([]) == "not measured"

