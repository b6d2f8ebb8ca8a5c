"""Item vectors per model version, gathered from the items topic; a version is searchable once it is complete."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from streams.contract.items import ItemsDecodeError, ItemsManifest, ItemVector, decode_items_record, split_key
from streams.recommend.index import ExactIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionIndex:
    """One loaded model version: its items in vocabulary order and their index."""

    model_version: str
    item_ids: tuple[str, ...]
    index: ExactIndex
    published_at_ms: int
    rows: dict[str, int] = field(repr=False)
    """Item id to row (and vocabulary rank)."""


@dataclass
class _Pending:
    manifest: ItemsManifest | None = None
    items: dict[str, ItemVector] = field(default_factory=dict)


class ItemCatalog:
    """Applies item-vectors records in any order and loads each version once its manifest and all of its
    ``count`` items have arrived (they come over several partitions, so the manifest may come first)."""

    def __init__(self) -> None:
        self.loaded: dict[str, VersionIndex] = {}
        self.skipped = 0
        self._pending: dict[str, _Pending] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> str | None:
        """Apply one record; returns the model version that became loaded or unloaded by it, if any."""
        if key is None:
            self.skipped += 1
            return None
        if value is None:
            return self._tombstone(key)
        try:
            record = decode_items_record(key, value)
        except ItemsDecodeError as exc:
            self.skipped += 1
            log.warning("skipped an invalid item-vectors record: %s", exc)
            return None
        if record.model_version in self.loaded:
            return None  # a re-publish of a loaded version: same content hash, same vectors
        pending = self._pending.setdefault(record.model_version, _Pending())
        if isinstance(record, ItemsManifest):
            pending.manifest = record
        else:
            pending.items[record.item_id] = record
        return self._try_load(record.model_version, pending)

    def _tombstone(self, key: bytes) -> str | None:
        """A deleted manifest or item retires the version: its index is dropped and it must be re-published.

        The version's other item records stay (pending): a manifest published again after the retirement loads
        it again, whichever partition a restart reads first. Dropping them too loaded nothing after such a
        restart when the item records came first: they were gone before the new manifest arrived. An item's
        own tombstone (freeing its space) drops that item.
        """
        try:
            version, item_id = split_key(key)
        except UnicodeDecodeError:
            self.skipped += 1
            return None
        unloaded = self.loaded.pop(version, None)
        pending = self._pending.setdefault(version, _Pending())
        if unloaded is not None:
            vectors = unloaded.index.vectors
            for row, kept_id in enumerate(unloaded.item_ids):
                pending.items[kept_id] = ItemVector(version, kept_id, row, vectors[row].tolist())
        pending.manifest = None
        if item_id is not None:
            pending.items.pop(item_id, None)
        if not pending.items:
            del self._pending[version]
        if unloaded is not None:
            log.info("model version %s unloaded (tombstone on the items topic)", version)
            return version
        return None

    def _try_load(self, version: str, pending: _Pending) -> str | None:
        manifest = pending.manifest
        if manifest is None or len(pending.items) < manifest.count:
            return None
        items = sorted(pending.items.values(), key=lambda item: item.rank)
        if len(items) != manifest.count or any(len(item.vector) != manifest.dim for item in items):
            # More items than announced or ragged vectors: a broken publish; keep it out of service.
            self.skipped += 1
            log.warning("model version %s: items do not match its manifest; not loaded", version)
            del self._pending[version]
            return None
        vectors = np.asarray([item.vector for item in items], dtype=np.float32)  # [N, D]
        ids = tuple(item.item_id for item in items)
        del self._pending[version]
        try:
            index = ExactIndex(vectors)
        except ValueError as exc:
            # Whatever the topic holds, it must not stop the recommender: it is compacted, so a record that
            # crashed it would crash every restart too.
            self.skipped += 1
            log.warning("model version %s: no index could be built (%s); not loaded", version, exc)
            return None
        self.loaded[version] = VersionIndex(
            version, ids, index, manifest.published_at_ms, {item_id: i for i, item_id in enumerate(ids)}
        )
        log.info("model version %s loaded: %d items of dimension %d", version, manifest.count, manifest.dim)
        return version

    def newest(self) -> VersionIndex | None:
        """The most recently published loaded version (the popularity fallback's catalogue)."""
        return max(self.loaded.values(), key=lambda v: v.published_at_ms, default=None)
