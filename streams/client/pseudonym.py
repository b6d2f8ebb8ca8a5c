"""Keyed pseudonyms of user ids, made where events are produced, so that no topic and no store holds a raw id.

A pseudonym is ``ps1-`` and the first 128 bits of HMAC-SHA256 of the UTF-8 user id under a secret key, in hex
(36 characters). The same id and key always give the same pseudonym, so a user's events still meet in one
partition and one profile; without the key a pseudonym cannot be computed from an id, so a leaked topic or
state directory names nobody. Whoever holds the key can compute the pseudonym of a known id (to look up,
recommend for or erase that user) but cannot invert one: keep a mapping of your own where you need the way
back. Made in the producer SDK rather than in the worker: a worker-side pseudonym would leave the raw id in
the input topics, the dead letters and the partitioning, which all come before the worker. See
docs/security.md ("Pseudonymisation").
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from pydantic import SecretStr

from streams.client.secret_files import SecretConfigError, resolve_secret

PSEUDONYM_PREFIX = "ps1-"
"""Names the scheme (HMAC-SHA256, 128 bits, hex), so a later scheme can live beside it."""
MIN_KEY_BYTES = 32
"""The key is its text's bytes, so a hex key of 32 characters holds 16 random bytes (128 bits, the pseudonym's
own length); a shorter one could be guessed. ``openssl rand -hex 32`` (64 characters) is the recommendation."""
_DIGEST_HEX = 32


class Pseudonymiser:
    """Maps user ids to their keyed pseudonyms (``ps1-`` + 32 hex digits)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise SecretConfigError(
                f"the pseudonym key must have at least {MIN_KEY_BYTES} bytes (characters of its text): "
                "make one with openssl rand -hex 32"
            )
        if len(set(key)) == 1:
            raise SecretConfigError("the pseudonym key is one character repeated: make one with openssl rand -hex 32")
        self._key = key

    @classmethod
    def from_secret(cls, value: SecretStr | None, path: Path | None) -> Pseudonymiser | None:
        """The pseudonymiser the settings ``pseudonym_key``/``pseudonym_key_file`` configure, or None (off)."""
        secret = resolve_secret("pseudonym_key", value, path)
        return None if secret is None else cls(secret.encode("utf-8"))

    def __call__(self, user_id: str) -> str:
        """The pseudonym of ``user_id``; a pseudonym is returned unchanged, so mapping twice is harmless."""
        if is_pseudonym(user_id):
            return user_id
        digest = hmac.new(self._key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:_DIGEST_HEX]

    def __repr__(self) -> str:
        return "Pseudonymiser(key=***)"


def is_pseudonym(user_id: str) -> bool:
    """Whether ``user_id`` has the form of a pseudonym (the SDK never maps such an id again)."""
    if len(user_id) != len(PSEUDONYM_PREFIX) + _DIGEST_HEX or not user_id.startswith(PSEUDONYM_PREFIX):
        return False
    return all(c in "0123456789abcdef" for c in user_id[len(PSEUDONYM_PREFIX) :])
