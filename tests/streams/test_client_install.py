"""The client install: `pip install .` in a fresh venv brings no torch, faust or RocksDB, and the producer SDK in
it sends a valid event to the real broker (and the CLI's client commands run there)."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from streams.contract.decoder import decode_event
from streams.contract.events import BrowseEvent
from streams.settings import Settings

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

    consumer = KafkaConsumer(
        settings.topic("events.browse"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=10_000,
    )
    try:
        records = list(consumer)
    finally:
        consumer.close()
    assert len(records) == 1
    event = decode_event(records[0].value, records[0].key, topic_type="browse")
    assert isinstance(event, BrowseEvent)
    assert (event.user_id, event.item_id, event.event_id) == ("light-user", "item-1", "light-1")

    # The CLI's client commands work in the same install.
    help_text = subprocess.run(
        [str(env_dir / "bin" / "profilestream"), "produce", "--help"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert help_text.returncode == 0, help_text.stderr[-2000:]
    assert sys.executable != str(python)
