"""A real worker is closed by default: faust's table and router views are gone, the lookup asks for its bearer
token when one is configured, and the token never reaches the worker's log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.contract.events import BrowseEvent, Event
from streams.settings import Settings
from streams.worker.store_layout import TABLE_NAME
from tests.harness import ProfileLog, WorkerProcess, send_events

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000
TOKEN = "lookup-token-7d4c1f0e9b2a"
USER = "closed-user"


def _get(settings: Settings, path: str, authorization: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{settings.web_port}{path}")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_faust_views_are_off_and_the_lookup_needs_its_token(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    token_file = tmp_path / "lookup-token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    settings = make_settings(lookup_token_file=token_file)
    profiles = ProfileLog(settings)
    worker = start_worker(settings)
    events: list[Event] = [BrowseEvent(event_id=f"e{i}", user_id=USER, ts_ms=T0 + i, item_id=f"i{i}") for i in range(3)]
    send_events(settings, events)
    profiles.wait_caught_up({USER: (3, T0 + 2)}, 90, "the user's profile", workers=(worker,))

    assert _get(settings, "/healthz/")[0] == 200
    # faust serves these views unless told not to: the raw state record and the worker map.
    for path in ("/table/", f"/table/{TABLE_NAME}/", f"/table/{TABLE_NAME}/{USER}/", "/router/",
                 f"/router/{TABLE_NAME}/", f"/router/{TABLE_NAME}/{USER}/"):  # fmt: skip
        status, _ = _get(settings, path, f"Bearer {TOKEN}")
        assert status == 404, path

    for refused in (None, "Bearer wrong-token", TOKEN, f"Basic {TOKEN}"):
        status, body = _get(settings, f"/profiles/{USER}/", refused)
        assert status == 401, refused
        assert json.loads(body) == {"error": "unauthorized"}
    for path in (f"/profiles/{USER}/", f"/profiles/{USER}"):  # with or without the trailing slash
        status, body = _get(settings, path, f"Bearer {TOKEN}")
        assert status == 200, path
        assert json.loads(body)["user_id"] == USER
        status, body = _get(settings, path.replace(USER, "nobody"), f"Bearer {TOKEN}")
        assert (status, json.loads(body)) == (404, {"error": "not_found"}), path
    assert _get(settings, f"/profiles/{USER}", "Bearer wrong-token")[0] == 401

    assert worker.stop() == 0
    assert TOKEN not in worker.log_text()
