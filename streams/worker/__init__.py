"""The worker runtime (the ``worker`` extra): start-up in ``main``, the Faust app in ``app``; see
``streams/__init__.py`` for the module map. The only package that imports faust or aiokafka, and the only
place that touches faust's private parts is ``faust_seam``."""
