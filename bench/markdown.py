"""Markdown pieces of the benchmark report: tables and number formats (no Kafka client needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table and the blank line after it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def times(value: float) -> str:
    """A ratio as ``1.23x``."""
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def num(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def pct(value: float | None) -> str:
    """A share as ``12.3%``."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"
