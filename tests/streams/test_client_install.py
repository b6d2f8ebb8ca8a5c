"""The client install: `pip install .` in a fresh venv brings no torch, faust or RocksDB, and the producer SDK in
it sends a valid event to the real broker, and so does the CLI's ``produce`` command from the same install."""

from __future__ import annotations

import json
import subprocess
import venv
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.contract.decoder import decode_event
from streams.contract.events import BrowseEvent
from streams.settings import Settings
from tests.harness import all_records

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "faust-streaming", "rocksdict", "numpy", "aiokafka", "prometheus-client")

SEND = """
import sys
from streams.client.producer import EventProducer

bootstrap, prefix = sys.argv[1], sys.argv[2]
with EventProducer(bootstrap, topic_prefix=prefix) as producer:
    producer.browse("light-user", "item-1", category="books", event_id="light-1")
    producer.flush()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "faust", "rocksdict", "numpy", "aiokafka"})
print("heavy modules:", loaded)
"""


def test_the_base_install_has_no_worker_dependencies_and_sends_a_valid_event(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    env_dir = tmp_path / "client-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not installed & set(HEAVY), f"the client install pulled in {sorted(installed & set(HEAVY))}"

    # Run outside the repo, so only the installed package can be imported.
    sent = subprocess.run(
        [str(python), "-c", SEND, settings.kafka_bootstrap, settings.topic_prefix],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr[-3000:]
    assert "heavy modules: []" in sent.stdout

    # The CLI's client command, from the same install: a line of a file, sent as written.
    line = {"schema": 1, "event_id": "light-2", "user_id": "light-user", "type": "browse", "ts": 1_767_225_600_000}
    line["item_id"] = "item-2"
    (tmp_path / "events.jsonl").write_text(json.dumps(line) + "\n")
    flags = ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    produced = subprocess.run(
        [str(env_dir / "bin" / "profilestream"), "produce", "events.jsonl", *flags],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert produced.returncode == 0, produced.stderr[-2000:]
    assert produced.stdout.strip() == "sent 1 events, skipped 0 invalid lines"

    records = all_records(settings.kafka_bootstrap, settings.topic("events.browse"))
    assert len(records) == 2
    events = [decode_event(value or b"", key, topic_type="browse") for key, value, _ in records]
    assert all(isinstance(e, BrowseEvent) for e in events)
    assert sorted((e.user_id, e.item_id, e.event_id) for e in events if isinstance(e, BrowseEvent)) == [
        ("light-user", "item-1", "light-1"),
        ("light-user", "item-2", "light-2"),
    ]
