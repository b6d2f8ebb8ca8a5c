"""The client SDK for producer and consumer teams: ``producer`` (send events), ``subscriber`` (read profiles),
``items`` (publish a model's item vectors), ``admin`` (create the topics). Needs only the base install:
kafka-python, no torch, faust or RocksDB."""
