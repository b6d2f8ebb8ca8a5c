"""The feedback consumer (``profilestream feedback``, docs/recommend.md): impressions joined with clicks.

``join`` (the pure, bounded impression-click join), ``metrics`` (CTR@k, clicks per impression, what could not
be attributed), ``consumer`` (the consumer group over the impression, browse and purchase topics), ``main``
(start-up).
"""
