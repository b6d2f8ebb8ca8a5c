"""Benchmarks of profilestream against the real local broker: throughput, freshness, cost, a side-by-side with
the naive design and a Quix Streams peer, a CPU profile, and the state size per user. Run ``python -m bench``."""
