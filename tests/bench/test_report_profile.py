"""The report's profile section: the drain's and the live-traffic profile side by side, and what each shows."""

from __future__ import annotations

from bench.profile_report import in_the_way, profile_section
from bench.pyspy import PARTS, ProfileSummary, Share
from bench.suite_config import QUICK

DRAIN = [0.9, 0.23, 0.0, 0.13, 0.10, 0.0, 0.08, 0.03, 0.01, 0.05, 0.04]
LIVE = [0.6, 0.05, 0.0, 0.20, 0.12, 0.07, 0.09, 0.04, 0.01, 0.06, 0.08]


def _summary(shares: list[float], top: str) -> ProfileSummary:
    parts = tuple(Share(label, share) for (label, _), share in zip(PARTS, shares, strict=True))
    return ProfileSummary(1_000, (Share(top, 0.1),), (), parts)


def test_the_live_profile_stands_beside_the_drain_profile() -> None:
    drain = _summary(DRAIN, "GRU.forward (torch/nn/modules/rnn.py)")
    live = _summary(LIVE, "encode_state (state/codec.py)")

    section = "\n".join(profile_section(drain, live, QUICK, 5_000.0))

    assert "| part | draining the backlog | live traffic at 50.0% |" in section
    assert "| state record encode (encode_state) | 13.0% | 20.0% |" in section
    assert "2,500 events/s over 1,000 users" in section
    drain_top, live_top = section.split("Top functions by own time, live traffic:")
    assert "`GRU.forward (torch/nn/modules/rnn.py)`" in drain_top
    assert "`encode_state (state/codec.py)`" in live_top


def test_each_profile_names_what_is_in_the_way_of_its_target() -> None:
    throughput, _, freshness, _ = in_the_way(_summary(DRAIN, "g"), _summary(LIVE, "e"), 0.5)

    assert throughput.startswith("What the profile shows in the way of the throughput: encoder: batched GRU")
    assert freshness.startswith("What the profile under live traffic (50.0% of the drain maximum) shows")
    # The live profile's four largest parts after the first, largest first.
    assert freshness.index("state record encode") < freshness.index("fold into window")
    assert "encoder: batched GRU" not in freshness


def test_without_a_live_profile_the_table_has_one_column() -> None:
    section = "\n".join(profile_section(_summary(DRAIN, "f"), None, QUICK, 5_000.0))

    assert "| part | share |" in section and "live traffic" not in section
    assert len(in_the_way(_summary(DRAIN, "f"), None, 0.5)) == 2
