"""The impression-click join: what counts as a click and at which k, the waiting of early clicks, the bounds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.contract.events import BrowseEvent, PurchaseEvent
from streams.contract.feedback import Impression, Source
from streams.feedback.join import Clicked, ClickedAt, FeedbackJoin, Shown, Unattributed
from streams.feedback.metrics import MAX_VERSION_LABELS, FeedbackMetrics

T = 1_767_225_600_000
WINDOW = 60_000
ITEMS = tuple(f"item-{i}" for i in range(30))


def _impression(request_id: str = "r1", user: str = "u1", ts: int = T, source: Source = "profile") -> Impression:
    version = "m1" if source == "profile" else None
    return Impression(
        request_id=request_id,
        user_id=user,
        ts_ms=ts,
        model_version=version,
        source=source,
        item_ids=ITEMS,
    )


def _browse(item: str, request_id: str | None = "r1", user: str = "u1", ts: int = T + 1000) -> BrowseEvent:
    return BrowseEvent(event_id=f"e-{item}-{ts}", user_id=user, ts_ms=ts, item_id=item, request_id=request_id)


def test_a_click_counts_once_per_impression_at_every_k_its_rank_is_within() -> None:
    join = FeedbackJoin(window_ms=WINDOW)
    assert join.impression(_impression(), partition=0, counted=True, now_ms=T) == [Shown("m1", "profile")]
    # Rank 4: within the top 5, 10 and 20, not the top 1.
    assert join.click(_browse("item-3"), partition=0, now_ms=T) == [
        Clicked("m1", "profile", "browse"),
        ClickedAt("m1", "profile", 5),
        ClickedAt("m1", "profile", 10),
        ClickedAt("m1", "profile", 20),
    ]
    # A second click at rank 1 adds only k=1; one beyond rank 20, or on an item not shown, only a click.
    assert join.click(_browse("item-0"), partition=0, now_ms=T) == [
        Clicked("m1", "profile", "browse"),
        ClickedAt("m1", "profile", 1),
    ]
    assert join.click(_browse("item-25"), partition=0, now_ms=T) == [Clicked("m1", "profile", "browse")]
    purchase = PurchaseEvent(event_id="p", user_id="u1", ts_ms=T + 5, item_id="elsewhere", quantity=1, request_id="r1")
    assert join.click(purchase, partition=0, now_ms=T) == [Clicked("m1", "profile", "purchase")]


def test_events_without_a_request_id_are_not_clicks() -> None:
    join = FeedbackJoin(window_ms=WINDOW)
    join.impression(_impression(), partition=0, counted=True, now_ms=T)
    assert join.click(_browse("item-0", request_id=None), partition=0, now_ms=T) == []
    assert join.pending == 0


def test_a_click_read_before_its_impression_waits_for_it_and_expires_counted_when_it_never_comes() -> None:
    join = FeedbackJoin(window_ms=WINDOW)
    assert join.click(_browse("item-1"), partition=0, now_ms=T) == []
    assert join.click(_browse("item-1", request_id="never"), partition=0, now_ms=T) == []
    assert join.pending == 2
    outcomes = join.impression(_impression(), partition=0, counted=True, now_ms=T + 10)
    assert outcomes[:2] == [Shown("m1", "profile"), Clicked("m1", "profile", "browse")]
    assert ClickedAt("m1", "profile", 5) in outcomes and ClickedAt("m1", "profile", 1) not in outcomes
    assert join.pending == 1
    assert join.expire(T + WINDOW) == []
    assert join.expire(T + WINDOW + 1) == [Unattributed("no_impression")]
    assert join.pending == 0 and join.held == 0


def test_another_users_click_and_a_late_click_are_not_attributed() -> None:
    join = FeedbackJoin(window_ms=WINDOW)
    join.impression(_impression(), partition=0, counted=True, now_ms=T)
    assert join.click(_browse("item-0", user="u2"), partition=0, now_ms=T) == [Unattributed("other_user")]
    assert join.click(_browse("item-0", ts=T + WINDOW + 1), partition=0, now_ms=T) == [Unattributed("too_late")]


def test_an_impression_read_again_after_a_restart_is_held_but_not_counted() -> None:
    join = FeedbackJoin(window_ms=WINDOW)
    assert join.impression(_impression(), partition=0, counted=False, now_ms=T) == []
    assert join.click(_browse("item-0"), partition=0, now_ms=T)[0] == Clicked("m1", "profile", "browse")
    # Read twice: ignored. Older than the window (read late): counted, but not held for clicks.
    assert join.impression(_impression(), partition=0, counted=True, now_ms=T) == []
    old = _impression("old", ts=T - WINDOW - 1)
    assert join.impression(old, partition=0, counted=True, now_ms=T) == [Shown("m1", "profile")]
    assert join.impression(old, partition=0, counted=False, now_ms=T) == []
    assert join.held == 1


def test_state_is_bounded_per_user_and_in_pending_and_forgotten_with_its_partition() -> None:
    join = FeedbackJoin(window_ms=WINDOW, max_per_user=3, max_pending=2)
    for i in range(5):
        join.impression(_impression(f"r{i}"), partition=1, counted=True, now_ms=T)
    assert join.held == 3
    assert join.click(_browse("item-0", request_id="r0"), partition=1, now_ms=T) == []  # evicted: waits
    join.click(_browse("item-0", request_id="x"), partition=2, now_ms=T)
    assert join.click(_browse("item-0", request_id="y"), partition=2, now_ms=T) == [Unattributed("pending_full")]
    join.forget_partitions({1})
    assert join.held == 0 and join.pending == 1
    join.forget_partitions({2})
    assert join.pending == 0


def test_metrics_count_outcomes_with_bounded_version_labels() -> None:
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry)
    join = FeedbackJoin(window_ms=WINDOW)
    metrics.count(join.impression(_impression(), partition=0, counted=True, now_ms=T))
    metrics.count(join.impression(_impression("r2", source="popular"), partition=0, counted=True, now_ms=T))
    metrics.count(join.click(_browse("item-0"), partition=0, now_ms=T))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"profilestream_feedback_{name}", labels)

    assert value("impressions_total", model_version="m1", source="profile") == 1
    assert value("impressions_total", model_version="none", source="popular") == 1
    assert value("clicked_impressions_total", model_version="m1", source="profile", k="1") == 1
    assert value("clicked_impressions_total", model_version="none", source="popular", k="1") == 0
    assert value("clicks_total", model_version="m1", source="profile", kind="browse") == 1
    for i in range(MAX_VERSION_LABELS + 3):
        metrics.count([Shown(f"v{i}", "profile")])
    versions = {
        s.labels["model_version"]
        for f in registry.collect()
        if f.name == "profilestream_feedback_impressions"
        for s in f.samples
    }
    assert "other" in versions and len(versions - {"other"}) == MAX_VERSION_LABELS


def test_a_click_read_again_after_a_restart_marks_its_impression_without_counting() -> None:
    join = FeedbackJoin(window_ms=WINDOW)
    join.impression(_impression(), partition=0, counted=False, now_ms=T)
    assert join.click(_browse("item-3"), partition=0, counted=False, now_ms=T) == []
    # The top 5 was clicked before the restart: a new click at rank 1 adds only k=1.
    assert join.click(_browse("item-0"), partition=0, now_ms=T) == [
        Clicked("m1", "profile", "browse"),
        ClickedAt("m1", "profile", 1),
    ]
    join.click(_browse("item-0", request_id="gone"), partition=0, counted=False, now_ms=T)
    assert join.expire(T + WINDOW + 1) == []  # a replayed click that never met its impression was counted before
