"""Keyed pseudonyms of user ids: stable, key-bound, contract-valid, and the only id the SDK sends when asked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from pydantic import SecretStr

from streams.cli.main import main as cli_main
from streams.client.producer import EventProducer
from streams.client.pseudonym import PSEUDONYM_PREFIX, Pseudonymiser, is_pseudonym
from streams.client.secret_files import SecretConfigError
from streams.contract.decoder import decode_event
from streams.contract.erasure import decode_erasure
from streams.contract.events import BrowseEvent, encode_event
from streams.contract.topics import ERASURE
from streams.settings import Settings
from tests.harness import wait_until

KEY = b"0123456789abcdef0123456789abcdef"
TS = 1_767_225_600_000


def test_a_pseudonym_is_stable_bound_to_its_key_and_hides_the_id() -> None:
    mapper = Pseudonymiser(KEY)
    alice = mapper("alice")
    assert alice == mapper("alice")
    assert alice.startswith(PSEUDONYM_PREFIX) and len(alice) == len(PSEUDONYM_PREFIX) + 32
    assert "alice" not in alice
    assert alice != mapper("alicf")
    assert alice != Pseudonymiser(KEY[::-1])("alice")
    assert is_pseudonym(alice) and not is_pseudonym("alice")
    # Mapping twice is harmless: a consumer that only knows the pseudonym may hand it back to the SDK.
    assert mapper(alice) == alice
    assert "0123" not in repr(mapper)


def test_a_short_or_missing_key_is_refused_or_off(tmp_path: Path) -> None:
    with pytest.raises(SecretConfigError, match="at least 32 bytes"):
        Pseudonymiser(b"short")
    with pytest.raises(SecretConfigError, match="at least 32 bytes"):
        Pseudonymiser(b"0123456789abcdef")  # openssl rand -hex 8: 64 random bits, once enough here
    with pytest.raises(SecretConfigError, match="repeated"):
        Pseudonymiser(b"a" * 64)
    assert Pseudonymiser.from_secret(None, None) is None
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(KEY.decode() + "\n")
    from_file = Pseudonymiser.from_secret(None, key_file)
    assert from_file is not None and from_file("bob") == Pseudonymiser(KEY)("bob")
    from_value = Pseudonymiser.from_secret(SecretStr(KEY.decode()), None)
    assert from_value is not None and from_value("bob") == Pseudonymiser(KEY)("bob")


def test_a_pseudonymous_event_is_a_valid_contract_event() -> None:
    event = BrowseEvent(event_id="e1", user_id=Pseudonymiser(KEY)("alice"), ts_ms=TS, item_id="i1")
    decoded = decode_event(encode_event(event), event.user_id.encode(), topic_type="browse", now_ms=TS)
    assert isinstance(decoded, BrowseEvent) and decoded.user_id == event.user_id


def test_the_cli_prints_pseudonyms_and_says_when_there_is_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(KEY.decode())
    assert cli_main(["pseudonym", "alice", "bob", "--pseudonym-key-file", str(key_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"alice {Pseudonymiser(KEY)('alice')}", f"bob {Pseudonymiser(KEY)('bob')}"]
    assert cli_main(["pseudonym", "alice"]) == 2
    assert "no key" in capsys.readouterr().err


@pytest.mark.kafka
def test_a_pseudonymising_producer_never_sends_the_raw_id(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(KEY.decode())
    settings = make_settings(pseudonym_key_file=key_file)
    alias = Pseudonymiser(KEY)("alice-raw-id")
    with EventProducer.from_settings(settings) as producer:
        assert producer.user_key("alice-raw-id") == alias
        producer.browse("alice-raw-id", "item-1", ts_ms=TS)
        producer.search("alice-raw-id", "red shoes", ts_ms=TS + 1)
        producer.request_erasure("alice-raw-id", wait_s=30)
        producer.flush()

    topics = [settings.topic("events.browse"), settings.topic("events.search"), settings.topic(ERASURE)]
    consumer = KafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    records: list[tuple[str, bytes, bytes]] = []
    try:

        def collect() -> bool:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                records.extend((tp.topic, r.key, r.value) for r in batch)
            return len(records) >= 3

        wait_until(collect, 30, "the two events and the erasure request")
    finally:
        consumer.close()
    for topic, key, value in records:
        assert key == alias.encode()
        assert b"alice-raw-id" not in key + value
        if topic.endswith(ERASURE):
            request = decode_erasure(value, key)
            assert getattr(request, "user_id", None) == alias
        else:
            event = decode_event(value, key, topic_type=topic.rsplit(".", 1)[1], now_ms=TS)
            assert getattr(event, "user_id", None) == alias
