"""Writing an impression for every response served: what was shown, to whom, under which request id.

A response is never held back or failed by its impression: the send is asynchronous, blocks at most
``MAX_BLOCK_MS`` (a full buffer or a broker away), and its outcome is counted
(``profilestream_recommend_impressions_total``). The consumer of impressions is ``profilestream feedback``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Final

from streams.client.producer import EventProducer, UndeliveredError, now_ms
from streams.contract.feedback import Impression
from streams.recommend.metrics import RecommendMetrics
from streams.recommend.service import Recommendation

log = logging.getLogger(__name__)

MAX_BLOCK_MS: Final = 250
"""Longest a request thread waits for room in the producer's buffer (or for the topic's metadata)."""


class ImpressionWriter:
    """Sends one impression per answered request through the SDK's producer (validated like any event)."""

    def __init__(self, producer: EventProducer, metrics: RecommendMetrics) -> None:
        self._producer = producer
        self._metrics = metrics

    def write(self, answer: Recommendation) -> None:
        """Send ``answer``'s impression; never raises."""
        impression = Impression(
            request_id=answer.request_id,
            user_id=answer.user_id,
            ts_ms=now_ms(),
            model_version=answer.model_version,
            source="popular" if answer.fallback is not None else "profile",
            item_ids=tuple(item.item_id for item in answer.items),
        )
        try:
            future = self._producer.impression(impression)
        except Exception as exc:  # a full buffer, a broker away, an id the contract refuses: the answer stands
            self._metrics.impressions.labels("failed").inc()
            log.warning("an impression was not sent: %s", type(exc).__name__)
            return
        future.add_callback(self._sent)
        future.add_errback(self._failed)

    def _sent(self, _metadata: Any) -> None:
        self._metrics.impressions.labels("sent").inc()

    def _failed(self, exc: BaseException) -> None:
        self._metrics.impressions.labels("failed").inc()
        log.warning("an impression was not delivered: %s", type(exc).__name__)

    def close(self) -> None:
        """Deliver what is buffered, then release the connection."""
        with contextlib.suppress(UndeliveredError):  # each failure was counted and logged by its errback
            self._producer.close(timeout_s=10)
