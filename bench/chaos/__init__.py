"""The chaos suite: the worker against faults, scored user by user against the offline result.

``python -m bench.chaos`` (``make chaos``) runs every scenario against a broker of its own and writes the results
table into docs/reliability.md; tests/bench/test_chaos.py runs small versions inside ``make test``.

- :mod:`bench.chaos.data`: reproducible event files from a seed, and the hostile-message catalogue.
- :mod:`bench.chaos.expected`: what every user's final profile must be, computed offline from the event file.
- :mod:`bench.chaos.kafka_io`: producing with recorded coordinates, reading profiles, dead letters and progress.
- :mod:`bench.chaos.faults`: worker supervision (kill -9, restarts), the broker (kill, pause), a small tmpfs disk.
- :mod:`bench.chaos.score`: a run's outcome against the expectation: lost, duplicated, wrong, dead letters.
- :mod:`bench.chaos.scenarios`: the scenarios, each on fresh topics and a fresh consumer group.
- :mod:`bench.chaos.report`: the results table and its place in docs/reliability.md.
"""
