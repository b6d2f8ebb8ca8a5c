"""HTTP lookup of one user's current profile, served by every worker.

``GET /profiles/{user_id}/`` answers from the worker that owns the user: a worker that does not own it
forwards the request there (to the URL the owner advertises: ``web_host``, see
:func:`streams.worker.app.advertised_web_host`, found through Faust's table router), so a client may ask any
worker. A request is forwarded at most once: the forwarded request carries ``X-Profilestream-Forwarded``, and a
worker that gets one for a user it does not own answers 503 ``not_ready``. Two workers whose views of the
assignment disagree (a rebalance in progress) would otherwise pass a request back and forth, each hop holding a
connection open on both, until the first times out. The answer is the
profile-updated v1 object as it would be published now (``updated_at`` is the time of the lookup), or 404. While
the worker does not know the partitions' owners yet, or restores its state (start-up, a rebalance, a new disk),
a user it cannot find is answered 503 ``not_ready`` with ``Retry-After``, never 404: the user may be in the
part of the changelog not read back yet, and a consumer would take a 404 for a user without history. So is any
user while faust's router cannot yet hash keys to partitions (it would fail with a 500, see
:func:`streams.worker.faust_seam.keys_placeable`). A record the loaded model did not make (a model rollout in
progress) is re-encoded from its stored window with the loaded model and answered with that model's version
(:mod:`streams.worker.profile_builder`).

With a bearer token configured, the lookup answers 401 to a request without it (:mod:`streams.worker.web_auth`),
before any routing or table read. ``/healthz/`` stays open: it holds no personal data and probes carry no token.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View
from yarl import URL

from state.errors import StateDecodeError
from state.spec import StateSpec
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.faust_seam import keys_placeable, restoring
from streams.worker.processor import wall_clock_ms
from streams.worker.profile_builder import current_profile
from streams.worker.web_auth import BearerToken

RETRY_AFTER_S = 1
"""The ``Retry-After`` of a not-ready answer: a restore of a few hundred MB of changelog takes seconds."""
FORWARD_TIMEOUT_S = 10.0
"""Longest a lookup waits for the owner it was forwarded to (faust's HTTP client would wait five minutes)."""
WWW_AUTHENTICATE = 'Bearer realm="profiles"'
FORWARDED_HEADER = "X-Profilestream-Forwarded"
"""Marks a request one worker forwarded to another: the owner answers it or refuses, never forwards it again."""
MAX_FORWARDED_ANSWER_BYTES = 1 << 20
"""Largest answer taken back from the owner (a profile is a few kilobytes); a larger one is answered 502."""
KEPT_ANSWER_HEADERS = ("Retry-After", "WWW-Authenticate")
"""The owner's headers passed back to the client: the ones its statuses (503, 401) need."""
_NOT_FORWARDED = frozenset({"host", "connection", "content-length", "transfer-encoding", "keep-alive"})
"""Hop-by-hop and per-connection headers, which the forwarding request sets for itself."""


def _not_ready(view: View) -> Response:
    return view.json({"error": "not_ready"}, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _node(url: URL | str) -> tuple[str, int]:
    """Host and port of a worker's advertised URL, compared the way faust's router compares them."""
    url = URL(str(url))
    return (url.host if url.scheme else url.path) or "", int(url.port or 80)


def register_lookup(
    app: faust.App, table: Any, encoder: EncoderRuntime, spec: StateSpec, token: BearerToken | None = None
) -> None:
    """Add the lookup view (behind ``token`` when one is required) and the liveness view to the web server."""
    checker = token or BearerToken(None)

    @app.page("/healthz/")
    class LivenessView(View):
        # Served on the worker's event loop (unlike /metrics, which has its own thread): a wedged loop fails it.
        async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            return self.json({"status": "ok"})

    @app.page("/profiles/{user_id}/")
    class ProfileView(View):
        async def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
            # Checked before routing: a request without the token never reaches another worker or the table.
            if not checker.allows(request.headers.get("Authorization")):
                return self.json({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": WWW_AUTHENTICATE})
            if not keys_placeable(app, table):
                # Start-up: faust's router cannot hash a key to its partition yet.
                return _not_ready(self)
            user_id = request.match_info["user_id"]
            try:
                owner = app.router.key_store(table.name, user_id)
            except KeyError:
                # Before the group has told this worker who owns which partition.
                return _not_ready(self)
            if _node(owner) == _node(app.conf.canonical_url):
                return self._answer(user_id)
            if FORWARDED_HEADER in request.headers:
                # The worker that forwarded this thought we own the user; we think another does: the
                # assignment is moving. Forwarding again could pass the request around a loop.
                return _not_ready(self)
            return await self._forward(request, owner)

        def _answer(self, user_id: str) -> Response:
            raw = table.get(user_id.encode())
            if raw is None:
                return _not_ready(self) if restoring(app) else self.json({"error": "not_found"}, status=404)
            try:
                profile = current_profile(bytes(raw), user_id, encoder, spec, wall_clock_ms())
            except StateDecodeError:
                return self.json({"error": "state_unreadable"}, status=500)
            return self.json(profile.to_dict())

        async def _forward(self, request: Request, owner: URL) -> Response:
            host, port = _node(owner)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
            headers[FORWARDED_HEADER] = "1"
            try:
                async with app.http_client.get(
                    request.url.with_host(host).with_port(port),
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
                ) as answer:
                    body = await answer.content.read(MAX_FORWARDED_ANSWER_BYTES + 1)
                    status, content_type = answer.status, answer.content_type
                    kept = {name: answer.headers[name] for name in KEPT_ANSWER_HEADERS if name in answer.headers}
            except (TimeoutError, aiohttp.ClientError):
                # The owner did not answer: stopped or moving (its partitions move to another worker once the
                # group notices), so ask again shortly.
                return _not_ready(self)
            if len(body) > MAX_FORWARDED_ANSWER_BYTES:
                return self.json({"error": "bad_gateway"}, status=502)
            return self.bytes(body, content_type=content_type, status=status, headers=kept)

    @app.page("/profiles/{user_id}")
    class ProfileViewWithoutSlash(ProfileView):
        """The same lookup without the trailing slash: otherwise aiohttp's plain 404 would read as an unknown user."""
