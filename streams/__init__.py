"""profilestream's Kafka side, one subpackage per audience. The flow starts at ``contract/``.

- ``contract/`` -- the wire contracts, for every team (standard library and orjson only):
  ``events`` (input event v1 and its bounds), ``decoder`` (the one decoder: an event or a rejection with a
  reason), ``profile`` (profile-updated v1), ``erasure`` (erasure request v1 and its decoder), ``items`` (item
  vectors on ``models.items``), ``feedback`` (impression v1 and its decoder), ``topics`` (topic names),
  ``schemas/`` (JSON Schemas).
- ``client/`` -- for producer and consumer teams (kafka-python): ``producer`` (the SDK), ``subscriber``
  (bootstrap from the compacted profile topic and follow it), ``items`` (publish a model's item vectors),
  ``admin`` (create the topics), ``acls`` (the ACLs of each role), ``security`` (TLS and SASL options of every
  client), ``secret_files`` (secrets from a setting or a file).
- ``worker/`` -- the runtime, the only package that imports faust or aiokafka: ``main`` (start-up), ``app`` (the
  Faust app, agents, units of work), ``alignment`` (event-time order across the input topics), ``processor``
  (decode, fold, encode), ``state_table`` (changelog first, store after), ``bulk_producer``, ``dead_letters``,
  ``encoder_runtime``, ``profile_builder`` (a record to a profile, for publishing and lookups), ``lookup``
  (HTTP), ``web_auth`` (the lookup's bearer token), ``erasure`` (checking an erasure request),
  ``broker_auth`` (faust's broker credentials), ``metrics``, ``lag_monitor``, ``log_limits``, ``gc_tuning``,
  ``rocksdb_store``, ``store_layout`` (faust's on-disk layout), ``faust_seam`` (every private faust access).
- ``offline/`` -- for data and model work: ``histories`` (event files to model input), ``trivago`` (importer),
  ``demo`` (generated traffic).
- ``recommend/`` -- the reference recommender service, built on the contracts and the client (plus numpy and
  prometheus-client, the worker install): see its module map.
- ``feedback/`` -- the feedback consumer: impressions joined with the clicks that carry their request id, CTR
  metrics (kafka-python and prometheus-client): see its module map.
- ``cli/`` -- the ``profilestream`` command: ``main`` (service, producer and state commands), ``model``
  (train, evaluate, export).
- ``bridge`` -- what the model and the state keep of a contract event; shared by the worker and offline work.
- ``settings`` -- the one settings object, read from ``PROFILESTREAM_*`` variables.
"""
