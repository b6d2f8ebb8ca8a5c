"""The items-topic contract: keys split back exactly, values parse back, and anything else is refused."""

from __future__ import annotations

import orjson
import pytest

from streams.contract.items import (
    ItemsDecodeError,
    ItemsManifest,
    ItemVector,
    decode_items_record,
    item_key,
    manifest_key,
    split_key,
)


@pytest.mark.parametrize("item_id", ["item-1", "a/b", "with\nnewline", "ünï cödé", "x" * 256])
def test_an_item_key_splits_back_into_version_and_id(item_id: str) -> None:
    assert split_key(item_key("3e6d72bafdc3420f", item_id)) == ("3e6d72bafdc3420f", item_id)


def test_a_manifest_key_has_no_item() -> None:
    assert split_key(manifest_key("untrained-0011")) == ("untrained-0011", None)


@pytest.mark.parametrize("version", ["", "a\nb"])
def test_a_version_that_could_not_be_split_back_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match="model version"):
        item_key(version, "item")


def test_records_round_trip() -> None:
    item = ItemVector("m1", "item-7", 3, [0.5, -0.25, 0.1])
    manifest = ItemsManifest("m1", 3, 10, 1_700_000_000_000)
    assert decode_items_record(item_key("m1", "item-7"), item.to_bytes()) == item
    assert decode_items_record(manifest_key("m1"), manifest.to_bytes()) == manifest


def _item_value(**changes: object) -> bytes:
    obj = orjson.loads(ItemVector("m1", "item-7", 0, [1.0, 2.0]).to_bytes())
    obj.update(changes)
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (item_key("m1", "item-7"), b"not json"),
        (item_key("m1", "item-7"), b"[1, 2]"),
        (item_key("m1", "item-7"), _item_value(format_version=2)),
        (item_key("m2", "item-7"), _item_value()),  # the value's version differs from the key's
        (item_key("m1", "item-8"), _item_value()),  # the value's item differs from the key's
        (item_key("m1", "item-7"), _item_value(rank=-1)),
        (item_key("m1", "item-7"), _item_value(vector=[])),
        (item_key("m1", "item-7"), _item_value(vector=["x"])),
        (item_key("m1", "item-7"), _item_value(vector="123")),  # float() reads a string's digits one by one
        (item_key("m1", "item-7"), _item_value(vector=[True, 1.0])),
        (item_key("m1", "item-7"), _item_value(rank=True)),
        (item_key("m1", "item-7"), _item_value(vector=[1e39, 1.0])),  # infinite in float32
        (manifest_key("m1"), _item_value()),  # an item under a manifest key
        (manifest_key("m1"), ItemsManifest("m1", 3, 0, 1_700_000_000_000).to_bytes()),  # a version without items
        (manifest_key("m1"), ItemsManifest("m1", True, 10, 1_700_000_000_000).to_bytes()),
        (b"\xff\xfe", _item_value()),
    ],
)
def test_anything_else_is_refused_with_a_reason(key: bytes, value: bytes) -> None:
    with pytest.raises(ItemsDecodeError):
        decode_items_record(key, value)


def test_non_finite_vectors_are_refused() -> None:
    value = _item_value().replace(b"[1.0,2.0]", b"[1e999,2.0]")
    with pytest.raises(ItemsDecodeError):
        decode_items_record(item_key("m1", "item-7"), value)
