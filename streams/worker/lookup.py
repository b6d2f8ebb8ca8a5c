"""HTTP lookup of one user's current profile, served by every worker.

``GET /profiles/{user_id}/`` answers from the worker that owns the user: a worker that does not own it
forwards the request there (Faust's table routing), so a client may ask any worker. The answer is the
profile-updated v1 object as it would be published now (``updated_at`` is the time of the lookup), or 404.
"""

from __future__ import annotations

from typing import Any

import faust
import numpy as np
import torch
from faust.web import Request, Response, View

from state.aggregates import profile_aggregates
from state.codec import decode_state
from state.errors import StateDecodeError
from state.spec import StateSpec
from streams.contract.profile import ProfileUpdated
from streams.worker.encoder_runtime import EncoderRuntime, embedding_rows
from streams.worker.processor import wall_clock_ms


def current_profile(raw: bytes, user_id: str, encoder: EncoderRuntime, spec: StateSpec) -> ProfileUpdated:
    """The profile of a stored record, computed as the worker publishes it."""
    record = decode_state(raw, spec)
    with torch.inference_mode():
        hidden = torch.from_numpy(np.asarray(record.hidden, dtype=np.float32))[None, :]  # [1, H]
        embedding = embedding_rows(encoder.model.profile(hidden).numpy())[0]  # [D]
    return ProfileUpdated(
        user_id=user_id,
        version=record.version,
        model_version=record.model_version,
        embedding=embedding,
        updated_at_ms=wall_clock_ms(),
        last_event_ts_ms=record.last_event_ms,
        event_count=record.event_count,
        aggregates=profile_aggregates(record, spec),
    )


def register_lookup(app: faust.App, table: Any, encoder: EncoderRuntime, spec: StateSpec) -> None:
    """Add the lookup view and the liveness view to the worker's web server."""

    @app.page("/healthz/")
    class LivenessView(View):
        # Served on the worker's event loop (unlike /metrics, which has its own thread): a wedged loop fails it.
        async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            return self.json({"status": "ok"})

    @app.page("/profiles/{user_id}/")
    class ProfileView(View):
        @app.table_route(table=table, match_info="user_id")
        async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            user_id = request.match_info["user_id"]
            raw = table.get(user_id.encode())
            if raw is None:
                return self.json({"error": "not_found"}, status=404)
            try:
                profile = current_profile(bytes(raw), user_id, encoder, spec)
            except StateDecodeError:
                return self.json({"error": "state_unreadable"}, status=500)
            return self.json(profile.to_dict())
