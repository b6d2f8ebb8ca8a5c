"""Secrets from the settings: a value given directly (a secret type) or a file that holds it, never both.

A secret is read when a client or server is built, not when the settings are, so a rotated file is picked up at the
next start. Errors name the setting and the file, never the secret.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr


class SecretConfigError(ValueError):
    """A secret setting that cannot be used: fix the named setting (or its file) and start again."""


def resolve_secret(name: str, value: SecretStr | None, path: Path | None) -> str | None:
    """The secret of setting ``name``: ``value`` or the text of the file ``path``, either stripped of surrounding
    white space; None when neither.

    Both given is an error (which one wins would be a guess); so is an unreadable, non-UTF-8 or empty file. Both
    are stripped alike: a key injected as a variable with a trailing newline must give the same pseudonyms as the
    same key in a file (or an erasure request would name a pseudonym no state has).
    """
    if value is not None and path is not None:
        raise SecretConfigError(f"set either {name} or {name}_file, not both")
    if value is not None:
        secret = value.get_secret_value().strip()
        if not secret:
            raise SecretConfigError(f"{name} is empty")
        return secret
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretConfigError(f"cannot read {name}_file {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        # Never the decoder's message: it quotes a byte of the secret and its position.
        raise SecretConfigError(f"{name}_file {path} is not UTF-8 text") from None
    if not text:
        raise SecretConfigError(f"{name}_file {path} is empty")
    return text
