"""The worker's check of one erasure request: a request to execute, or a dead letter that says why not."""

from __future__ import annotations

from collections.abc import Callable

from streams.contract.decoder import Reason, Rejection
from streams.contract.erasure import ErasureRequest, decode_erasure
from streams.worker.processor import DeadLetter, InboundMessage

STAGE = "erasure"
"""The ``ps.stage`` header of an erasure request's dead letter."""


def check_erasure(
    message: InboundMessage, partition_of: Callable[[bytes], int], now_ms: int
) -> ErasureRequest | DeadLetter:
    """Decode ``message`` of the erasure topic; refuse it also when it is not on the partition ``partition_of``
    (Kafka's default partitioner) gives its key.

    A request on another partition than the user's would look up the state of the wrong partition, find nothing
    and be acknowledged with the user's data still in place: it is refused instead, like such an event.
    """
    decoded = decode_erasure(message.value, message.key, now_ms=now_ms)
    if isinstance(decoded, Rejection):
        return DeadLetter(message, STAGE, decoded.reason, decoded.detail)
    if partition_of(decoded.user_id.encode()) != message.partition:
        return DeadLetter(
            message,
            STAGE,
            Reason.WRONG_PARTITION,
            "the request is not on the partition the default partitioner gives its key",
        )
    return decoded
