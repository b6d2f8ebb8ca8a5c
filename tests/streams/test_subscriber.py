"""The SDK's profile subscriber against the real broker: it holds the newer of two profiles of a user, whatever
order the topic holds them in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from streams.cli.main import main
from streams.client.subscriber import ProfileSubscriber, supersedes
from streams.contract.profile import ProfileUpdated
from streams.contract.topics import PROFILES
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def _profile(user: str, version: int, updated_at_ms: int) -> ProfileUpdated:
    return ProfileUpdated(user, version, "m1", [0.6, 0.8], updated_at_ms, updated_at_ms - 10, version)


def test_supersedes_keeps_the_newer_profile() -> None:
    held = _profile("u", 5, 5_000)
    assert supersedes(_profile("u", 6, 6_000), held.version, held.updated_at_ms)
    assert not supersedes(_profile("u", 5, 5_000), held.version, held.updated_at_ms), "published twice"
    assert not supersedes(_profile("u", 4, 4_000), held.version, held.updated_at_ms), "an older one behind"
    assert supersedes(_profile("u", 1, 9_000), held.version, held.updated_at_ms), "a user counting again"


def test_the_subscriber_skips_a_republished_or_stale_profile(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    sent = [
        _profile("a", 2, 2_000),
        _profile("a", 2, 2_000),  # a producer's retry the broker had written already
        _profile("a", 1, 1_000),  # an older profile behind the newer
        _profile("b", 5, 1_000),
        _profile("b", 1, 5_000),  # state lost and counting again: newer, though the version is lower
    ]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for profile in sent:
        # One partition for both users, so the topic holds them in the order sent.
        producer.send(settings.topic(PROFILES), key=profile.user_id.encode(), value=profile.to_bytes(), partition=0)
    # Keyed by one user, naming another: filed under either, it would overwrite someone; both kinds skip it.
    producer.send(settings.topic(PROFILES), key=b"a", value=_profile("b", 9, 9_000).to_bytes(), partition=0)
    producer.flush()
    producer.close()

    with ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as holding:
        assert holding.lag() == len(sent) + 1, "nothing read yet"
        seen: list[object] = []
        latest = holding.bootstrap(on_change=seen.append)
        assert (latest["a"].version, latest["a"].updated_at_ms) == (2, 2_000)
        assert (latest["b"].version, latest["b"].updated_at_ms) == (1, 5_000)
        assert holding.superseded == 2
        assert holding.skipped == 1, "the profile whose user_id is not its key"
        assert holding.lag() == 0, "read to the end"
        assert len(seen) == 3, "superseded profiles are not passed on"

    with ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, hold=False) as raw:
        everything: list[object] = []
        raw.bootstrap(on_change=everything.append)
        assert everything == sent, "without holding, every profile as the topic holds it"
        assert raw.superseded == 0
        assert raw.skipped == 1


def test_a_tombstone_whose_key_is_not_utf8_deletes_nobody(make_settings: Callable[..., Settings]) -> None:
    # Decoded leniently, every such key read as the replacement character, and deleted the user of that name.
    settings = make_settings()
    replacement = _profile("\ufffd", 1, 1_000)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.topic(PROFILES), key=replacement.user_id.encode(), value=replacement.to_bytes(), partition=0)
    producer.send(settings.topic(PROFILES), key=b"\xff", value=None, partition=0)
    producer.flush()
    producer.close()

    with ProfileSubscriber(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as holding:
        seen: list[object] = []
        latest = holding.bootstrap(on_change=seen.append)
        assert list(latest) == ["\ufffd"]
        assert seen == [replacement]
        assert holding.skipped == 1


def test_versions_expect_fails_on_a_topic_without_profiles(make_settings: Callable[..., Settings]) -> None:
    # An empty topic (or a wrong prefix) read as a finished rollout: every one of no profiles is of any version.
    settings = make_settings()
    flags = ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix]
    assert main(["profiles", "versions", "--expect", "m1", *flags]) == 1
