"""Bearer-token check of the worker's HTTP lookup.

When a token is configured (``lookup_token`` or ``lookup_token_file``), ``/profiles/...`` answers 401 to a request
without ``Authorization: Bearer <token>``. The comparison takes the same time wherever the tokens differ
(:func:`hmac.compare_digest`), so the answer time tells an attacker nothing about a guess. A request that one
worker forwards to the owner of the user (faust's table routing) keeps its headers, so the owner checks it again.
"""

from __future__ import annotations

import hmac

from streams.client.secret_files import resolve_secret
from streams.settings import Settings

SCHEME = "bearer"


class BearerToken:
    """The lookup's token, or no token (every request passes)."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token is not None else None

    @classmethod
    def from_settings(cls, settings: Settings) -> BearerToken:
        """The token the settings configure (read from its file, if given that way)."""
        return cls(resolve_secret("lookup_token", settings.lookup_token, settings.lookup_token_file))

    @property
    def required(self) -> bool:
        """Whether requests must carry the token."""
        return self._token is not None

    def allows(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header value may read profiles."""
        if self._token is None:
            return True
        if not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != SCHEME:
            return False
        # aiohttp keeps header bytes that are not UTF-8 as surrogate escapes: encoded back, never an exception (a
        # 500 and a traceback per request for anyone without a token).
        return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._token)

    def __repr__(self) -> str:
        # Never the token itself: this object may end up in a log line or a traceback.
        return f"BearerToken(required={self.required})"
