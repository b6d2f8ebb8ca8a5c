"""The client SDK for producer and consumer teams: ``producer`` (send events and erasure requests), ``subscriber``
(read profiles), ``items`` (publish a model's item vectors), ``admin`` (create the topics), ``acls`` (the ACLs of
each role), ``security`` (TLS and SASL options from the settings), ``secret_files`` (a secret from a setting or a
file). Needs only the base install:
kafka-python, no torch, faust or RocksDB."""
