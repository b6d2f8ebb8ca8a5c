"""The recommender's rules without a broker: versions load only when complete, a profile is scored only against
its own version, purchases are never recommended, and the popularity fallback."""

from __future__ import annotations

import numpy as np
import pytest

from streams.client.subscriber import ProfileDeleted
from streams.contract.events import PurchaseEvent, encode_event
from streams.contract.items import ItemsManifest, ItemVector, item_key, manifest_key
from streams.contract.profile import ProfileUpdated
from streams.recommend.catalog import ItemCatalog
from streams.recommend.service import Fallback, Recommender

DIM = 4


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _records(version: str, vectors: np.ndarray) -> list[tuple[bytes, bytes]]:
    items = [
        (item_key(version, f"item-{i}"), ItemVector(version, f"item-{i}", i, row.tolist()).to_bytes())
        for i, row in enumerate(vectors)
    ]
    manifest = ItemsManifest(version, vectors.shape[1], len(vectors), 1_700_000_000_000 + len(version))
    return [*items, (manifest_key(version), manifest.to_bytes())]


def _profile(user: str, version: str, embedding: list[float]) -> ProfileUpdated:
    return ProfileUpdated(user, 1, version, embedding, 1_700_000_000_000, 1_700_000_000_000, 3)


def _purchase(user: str, item: str, quantity: int = 1, ts_ms: int = 1_700_000_000_000) -> tuple[bytes, bytes]:
    event = PurchaseEvent(
        event_id=f"{user}-{item}-{quantity}", user_id=user, ts_ms=ts_ms, item_id=item, quantity=quantity
    )
    return user.encode(), encode_event(event)


def _recommender(versions: dict[str, np.ndarray]) -> Recommender:
    recommender = Recommender()
    for version, vectors in versions.items():
        for key, value in _records(version, vectors):
            recommender.catalog.apply(key, value)
    return recommender


def test_a_version_loads_only_once_manifest_and_all_items_arrived_in_any_order() -> None:
    records = _records("m1", _vectors(5, 1))
    catalog = ItemCatalog()
    manifest, items = records[-1], records[:-1]
    assert catalog.apply(*manifest) is None  # the manifest may come first (another partition)
    for key, value in items[:-1]:
        assert catalog.apply(key, value) is None
        assert "m1" not in catalog.loaded
    assert catalog.apply(*items[-1]) == "m1"
    assert catalog.loaded["m1"].item_ids == tuple(f"item-{i}" for i in range(5))


def test_a_tombstone_unloads_the_version() -> None:
    catalog = ItemCatalog()
    for key, value in _records("m1", _vectors(3, 1)):
        catalog.apply(key, value)
    assert catalog.apply(manifest_key("m1"), None) == "m1"
    assert catalog.loaded == {}


@pytest.mark.parametrize("items_first", [True, False])
def test_a_version_retired_then_published_again_is_loaded_whichever_partition_comes_first(items_first: bool) -> None:
    # What a restart reads before compaction: the items, the first manifest, its tombstone, the manifest again
    # (keys on different partitions, so the items may come before or after the manifest key's history).
    records = _records("m1", _vectors(4, 1))
    manifest, items = records[-1], records[:-1]
    manifest_history = [manifest, (manifest_key("m1"), None), manifest]
    catalog = ItemCatalog()
    for key, value in [*items, *manifest_history] if items_first else [*manifest_history, *items]:
        catalog.apply(key, value)
    assert list(catalog.loaded) == ["m1"]
    assert catalog.loaded["m1"].item_ids == tuple(f"item-{i}" for i in range(4))
    # Retired for good: the manifest's tombstone, then each item's (which frees what was kept).
    assert catalog.apply(manifest_key("m1"), None) == "m1"
    for key, _ in items:
        catalog.apply(key, None)
    assert catalog.loaded == {} and catalog._pending == {}


def test_invalid_records_are_counted_and_never_load() -> None:
    catalog = ItemCatalog()
    catalog.apply(item_key("m1", "x"), b"garbage")
    catalog.apply(None, b"{}")
    assert catalog.skipped == 2
    assert catalog.loaded == {}


def test_a_profile_is_scored_against_its_own_version_only() -> None:
    v1, v2 = _vectors(50, 1), _vectors(50, 2)
    recommender = _recommender({"m1": v1, "m2": v2})
    query = v2[7] / np.linalg.norm(v2[7])
    recommender.profiles_changed([_profile("u", "m2", query.tolist())])
    answer = recommender.recommend("u", 5)
    expected = np.argsort(-(v2 @ query))[:5]
    assert answer.fallback is None and answer.model_version == "m2"
    assert [i.item_id for i in answer.items] == [f"item-{r}" for r in expected]
    np.testing.assert_allclose([i.score for i in answer.items], (v2 @ query)[expected], rtol=1e-5)


def test_a_profile_of_an_unloaded_version_gets_the_fallback_never_another_versions_scores() -> None:
    recommender = _recommender({"m1": _vectors(20, 1)})
    recommender.profiles_changed([_profile("u", "m-unknown", [0.5] * DIM)])
    answer = recommender.recommend("u", 5)
    assert answer.fallback is Fallback.NO_INDEX
    assert answer.model_version is None


def test_a_profile_of_another_dimension_gets_the_fallback() -> None:
    recommender = _recommender({"m1": _vectors(20, 1)})
    recommender.profiles_changed([_profile("u", "m1", [0.5] * (DIM + 1))])
    assert recommender.recommend("u", 5).fallback is Fallback.DIMENSION


def test_purchased_items_are_never_recommended() -> None:
    vectors = _vectors(30, 3)
    recommender = _recommender({"m1": vectors})
    query = vectors[4] / np.linalg.norm(vectors[4])
    recommender.profiles_changed([_profile("u", "m1", query.tolist())])
    best = [i.item_id for i in recommender.recommend("u", 10).items]
    for item in best[:5]:
        recommender.purchases.apply(*_purchase("u", item))
    answer = recommender.recommend("u", 10)
    assert not {i.item_id for i in answer.items} & set(best[:5])
    assert [i.item_id for i in answer.items][:5] == best[5:10]
    assert len(answer.items) == 10


def test_unknown_users_get_the_most_bought_items_then_the_models_frequency_order_minus_their_purchases() -> None:
    recommender = _recommender({"m1": _vectors(10, 1)})
    for key, value in [_purchase("a", "item-7", 3), _purchase("b", "item-5"), _purchase("c", "item-5")]:
        recommender.purchases.apply(key, value)
    answer = recommender.recommend("nobody", 4)
    assert answer.fallback is Fallback.UNKNOWN_USER
    # Purchases are counted, not units: three units in one purchase count once.
    assert [(i.item_id, i.score) for i in answer.items] == [
        ("item-5", 2.0),
        ("item-7", 1.0),
        ("item-0", 0.0),
        ("item-1", 0.0),
    ]
    # A user without a profile who bought the most popular item does not get it back.
    assert "item-5" not in {i.item_id for i in recommender.recommend("b", 4).items}


def test_the_popularity_ranking_follows_new_purchases_at_most_once_a_second() -> None:
    recommender = _recommender({"m1": _vectors(10, 1)})
    now = [100.0]
    recommender._clock = lambda: now[0]
    assert recommender.recommend("nobody", 1).items[0].item_id == "item-0"
    recommender.purchases.apply(*_purchase("a", "item-9"))
    # Within the refresh interval the ranking is kept (sorting the catalogue per purchase cost every request)...
    assert recommender.recommend("nobody", 1).items[0].item_id == "item-0"
    assert "item-9" not in {i.item_id for i in recommender.recommend("a", 10).items}  # ...a user's own purchase is out
    now[0] += recommender.popular_refresh_s
    assert recommender.recommend("nobody", 1).items[0].item_id == "item-9"


def test_a_profile_tombstone_drops_the_users_profile_and_purchases_and_only_theirs() -> None:
    recommender = Recommender()
    recommender.purchases.apply(*_purchase("a", "item-1"))
    recommender.purchases.apply(*_purchase("b", "item-2"))
    recommender.profiles_changed([_profile("a", "m1", [1.0] * DIM)])
    recommender.profiles_changed([ProfileDeleted("a"), _profile("b", "m1", [1.0] * DIM)])
    assert "a" not in recommender.profiles and recommender.recommend("a", 3).fallback is Fallback.UNKNOWN_USER
    assert recommender.purchases.bought("a") == frozenset()
    assert recommender.purchases.bought("b") == {"item-2"}
    assert recommender.purchases.counts["item-1"] == 1  # counts name nobody and stay


def test_a_manifest_without_items_is_skipped_and_an_index_failure_never_stops_the_catalog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = ItemCatalog()
    empty = ItemsManifest("m0", DIM, 0, 1_700_000_000_000)
    assert catalog.apply(manifest_key("m0"), empty.to_bytes()) is None
    assert catalog.skipped == 1 and catalog.loaded == {}

    def refuse(vectors: np.ndarray) -> None:
        raise ValueError("no index")

    monkeypatch.setattr("streams.recommend.catalog.ExactIndex", refuse)
    for key, value in _records("m1", _vectors(3, 1)):
        assert catalog.apply(key, value) is None
    assert catalog.skipped == 2 and catalog.loaded == {}


def test_invalid_purchase_records_are_skipped() -> None:
    recommender = Recommender()
    recommender.purchases.apply(b"a", b"{not json")
    recommender.purchases.apply(b"a", None)
    assert recommender.purchases.skipped == 2 and recommender.purchases.users == 0


@pytest.mark.parametrize("k", [0, -1, 201])
def test_k_out_of_range_is_refused(k: int) -> None:
    with pytest.raises(ValueError, match="k must"):
        Recommender().recommend("u", k)


def test_the_recommender_keeps_the_newer_of_two_profiles() -> None:
    recommender = Recommender()
    newer = ProfileUpdated("u", 2, "m1", [1.0] * DIM, 2_000, 1_990, 2)
    older = ProfileUpdated("u", 1, "m1", [0.5] * DIM, 1_000, 990, 1)
    recommender.profiles_changed([newer, newer, older])
    held = recommender.profiles["u"]
    assert (held.version, held.updated_at_ms, float(held.embedding[0])) == (2, 2_000, 1.0)
    assert recommender.superseded == 2


def test_a_tombstone_read_after_the_users_later_purchases_drops_only_the_earlier_ones() -> None:
    # A restart reads every purchase first, then the profile topic, where compaction has not yet removed the
    # tombstone of an erasure the user came back after: what they bought since must still be excluded.
    recommender = Recommender()
    recommender.purchases.apply(*_purchase("a", "item-1", ts_ms=1_700_000_000_000))
    recommender.purchases.apply(*_purchase("a", "item-2", ts_ms=1_700_000_900_000))
    recommender.profiles_changed([ProfileDeleted("a", deleted_at_ms=1_700_000_500_000)])
    assert recommender.purchases.bought("a") == {"item-2"}
    recommender.profiles_changed([ProfileDeleted("a", deleted_at_ms=1_700_001_000_000)])
    assert recommender.purchases.bought("a") == frozenset() and recommender.purchases.users == 0


def test_purchases_past_the_retention_are_forgotten_and_the_counts_stay() -> None:
    # Held in memory, a purchase outlived the topic's retention for the life of the process.
    log = Recommender().purchases
    log.apply(*_purchase("a", "item-1", ts_ms=1_700_000_000_000))
    log.apply(*_purchase("a", "item-2", ts_ms=1_700_000_900_000))
    log.apply(*_purchase("b", "item-1", ts_ms=1_700_000_100_000))
    assert log.expire(before_ms=1_700_000_500_000) == 2
    assert log.bought("a") == {"item-2"} and log.bought("b") == frozenset() and log.users == 1
    assert log.counts == {"item-1": 2, "item-2": 1}, "popularity names nobody"
    assert log.expire(before_ms=1_700_000_500_000) == 0
    assert log.expire(before_ms=1_700_000_900_000) == 0, "a purchase at the cut is still within the retention"
