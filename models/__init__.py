"""The model room: event features, the GRU profile encoder, checkpoints and training.

Imports only torch and numpy (never `streams/` or `state/`). Modules:

* `events`: `EventInput` and the stable hashing of ids and queries (no torch);
* `features`: `FeatureSpace` (vocabularies, buckets) and event tensors;
* `encoder`: `ProfileEncoder` with `step`/`fold` (stream) and `encode`/`encode_batch` (offline) entry points;
* `checkpoint`: save/load checkpoint directories, `model_version`, `untrained_model`;
* `training`: `train` on a next-item objective; `ranking`: next-item ranks and Recall/MRR/NDCG@k;
* `evaluation`: the offline protocol (split, targets, one ranking rule, click-outs); `baselines`: popularity and
  item-kNN; `export`: item vectors for recommenders;
* `errors`: `ModelError` and its subclasses.

Nothing is imported here, so `import models.events` stays light.
"""
