"""The reference recommender (``profilestream recommend``, docs/recommend.md), a consumer of the contracts only.

``index`` (exact dot-product top k with exclusion), ``catalog`` (item-vector records to loaded model versions),
``purchases`` (bought items per user, popularity), ``service`` (the rules of one request), ``follower``
(bootstrap and follow the items, purchase and profile topics), ``http`` (the server), ``metrics``, ``main``
(start-up).
"""
