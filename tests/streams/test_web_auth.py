"""The lookup's bearer token: who passes, who does not, and that the token never shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.settings import load_settings
from streams.worker.app import WebViewsOpenError, build_faust_app
from streams.worker.web_auth import BearerToken

TOKEN = "tok-Zm9vYmFy-1234567890"


def test_without_a_token_every_request_passes() -> None:
    token = BearerToken.from_settings(load_settings())
    assert not token.required
    assert token.allows(None)


def test_only_the_configured_bearer_token_passes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    for token in (BearerToken.from_settings(load_settings(lookup_token_file=path)),
                  BearerToken.from_settings(load_settings(lookup_token=SecretStr(TOKEN))),
                  BearerToken.from_settings(load_settings(lookup_token=SecretStr(TOKEN + "\n")))):  # fmt: skip
        assert token.required
        assert token.allows(f"Bearer {TOKEN}")
        assert token.allows(f"bearer {TOKEN}")  # the scheme is case-insensitive (RFC 9110)
        assert not token.allows(None)
        assert not token.allows("")
        assert not token.allows(TOKEN)
        assert not token.allows(f"Basic {TOKEN}")
        assert not token.allows(f"Bearer {TOKEN[:-1]}")
        assert not token.allows(f"Bearer {TOKEN}x")
        assert not token.allows("Bearer ")
        assert not token.allows("Bearer \udcff\udcfe")  # header bytes not UTF-8, as aiohttp hands them on
        assert TOKEN not in repr(token)


@pytest.mark.parametrize(
    "variable",
    [
        "APP_WEB_TABLES_ENABLED",
        "APP_WEB_ROUTER_ENABLED",
        "APP_WEB_STATS_ENABLED",  # /stats/ and /assignment/
        "APP_WEB_GRAPH_ENABLED",
        "APP_WEB_METRICS_ENABLED",  # /performance
        "APP_DEBUG",
    ],
)
def test_the_worker_refuses_faust_views_turned_on_from_the_environment(
    variable: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # faust reads APP_* variables over the arguments the worker gives it; /table/ would serve raw state records.
    settings = load_settings(state_dir=tmp_path)
    assert not build_faust_app(settings).conf.web_tables_enabled
    monkeypatch.setenv(variable, "true")
    with pytest.raises(WebViewsOpenError, match="are on"):
        build_faust_app(settings)
