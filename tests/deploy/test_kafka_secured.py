"""The local broker with a SASL_SSL listener, SCRAM users and ACLs (deploy/local, KAFKA_SECURITY=sasl_ssl), and
every profilestream client against it: right credentials work end to end (CLI, admin, SDK, worker, subscriber),
a wrong password (CLI and worker) and a principal without ACLs are refused with a clear message, no secret is
printed, and the ACLs of each role (``profilestream acls apply``) let a worker and a producer do their jobs and
nothing else."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka.errors import TopicAuthorizationFailedError
from prometheus_client import CollectorRegistry

from bench.procs import free_port
from streams.client.producer import EventProducer, UndeliveredError
from streams.client.subscriber import ProfileDeleted, ProfileSubscriber
from streams.contract.events import BrowseEvent
from streams.recommend.coverage import Coverage
from streams.recommend.follower import Follower
from streams.recommend.metrics import RecommendMetrics
from streams.recommend.service import Recommender
from streams.settings import Settings, load_settings
from tests.conftest import KAFKA_SCRIPT, REPO_ROOT
from tests.harness import WorkerProcess, run_cli, wait_until

pytestmark = pytest.mark.kafka
T0 = 1_767_225_600_000
SECURED_ENV = {
    "KAFKA_SECURITY": "sasl_ssl",
    "KAFKA_PORT": os.environ.get("TEST_SECURED_KAFKA_PORT", "19192"),
    "KAFKA_CONTROLLER_PORT": os.environ.get("TEST_SECURED_KAFKA_CONTROLLER_PORT", "19193"),
    "KAFKA_DATA_DIR": os.environ.get("TEST_SECURED_KAFKA_DATA_DIR", "var/kafka-test-secured"),
}


@dataclass(frozen=True)
class SecuredBroker:
    """Where the secured broker listens and where kafka.sh left its CA and the users' password files."""

    bootstrap: str
    data_dir: Path
    start_command_lines: frozenset[str]
    """Every command line seen on the machine while kafka.sh made the secrets, formatted and started."""

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    def password_file(self, user: str) -> Path:
        return self.data_dir / "secrets" / f"{user}.password"


class CommandLineSampler:
    """Collects the command line of every process on the machine, every few milliseconds, while it is entered:
    what ``ps`` would have shown any user then."""

    def __init__(self, period_s: float = 0.002) -> None:
        self.seen: set[str] = set()
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CommandLineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                with contextlib.suppress(OSError):  # the process ended
                    self.seen.add(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))


def _kafka_sh(command: str) -> str:
    done = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), command],
        env={**os.environ, **SECURED_ENV},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kafka.sh {command} (sasl_ssl) failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def secured_broker() -> Iterator[SecuredBroker]:
    """A fresh SASL_SSL broker for this module; stopped at the end."""
    _kafka_sh("wipe")
    with CommandLineSampler() as sampler:
        bootstrap = _kafka_sh("start").splitlines()[-1]
    data_dir = Path(SECURED_ENV["KAFKA_DATA_DIR"])
    try:
        yield SecuredBroker(
            bootstrap, data_dir if data_dir.is_absolute() else REPO_ROOT / data_dir, frozenset(sampler.seen)
        )
    finally:
        _kafka_sh("stop")


def _settings(
    broker: SecuredBroker, tmp_path: Path, user: str = "app", password_of: str | None = None, run: str | None = None
) -> Settings:
    run = run or uuid.uuid4().hex[:8]
    return load_settings(
        kafka_bootstrap=broker.bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=user,
        kafka_sasl_password_file=broker.password_file(password_of or user),
        kafka_ssl_cafile=broker.ca_file,
        topic_prefix=f"s{run}.",
        app_id=f"ps-secured-{run}",
        state_dir=tmp_path / f"state-{user}",
        partitions=2,
        metrics_port=0,
        web_port=free_port(),
        model_failure_linger_s=0.0,
        consumer_session_timeout_s=10.0,
    )


def test_no_password_is_on_a_command_line_while_the_broker_is_made(secured_broker: SecuredBroker) -> None:
    # Formatting the storage (its SCRAM users), making the keystore and rendering the broker's config all
    # handle passwords; any user of the machine can read a running command's arguments.
    lines = secured_broker.start_command_lines
    assert any("StorageTool" in line for line in lines), "the sampler saw the storage being formatted"
    for user in ("admin", "app", "worker", "producer", "eraser", "subscriber", "stranger", "keystore"):
        password = secured_broker.password_file(user).read_text().strip()
        assert not [line for line in lines if password in line], f"{user}'s password was on a command line"


def test_right_credentials_work_end_to_end(
    secured_broker: SecuredBroker, tmp_path: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = _settings(secured_broker, tmp_path)
    password = secured_broker.password_file("app").read_text().strip()
    created = run_cli(settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    # The six of the worker, the state changelog, models.items and events.impression.
    assert created.stdout.count(": created") == 9

    subscriber = ProfileSubscriber.from_settings(settings)
    worker = start_worker(settings, name="secured-worker")
    with EventProducer.from_settings(settings) as producer:
        for i in range(3):
            producer.send(BrowseEvent(event_id=f"e{i}", user_id="secured-user", ts_ms=T0 + i, item_id="i"))
    seen: list[object] = []

    def profile_count() -> int:
        seen.extend(subscriber.poll(timeout_ms=200))
        latest = subscriber.profiles.get("secured-user")
        return latest.event_count if latest is not None else 0

    wait_until(lambda: profile_count() == 3, 120, "the profile over SASL_SSL", workers=(worker,))

    # A model's item vectors are published with the same settings (model publish once connected in the clear).
    events = tmp_path / "demo.jsonl"
    assert run_cli(settings, "demo-events", "--users", "20", "--count", "600", "--out", str(events)).returncode == 0
    model = tmp_path / "model"
    tiny = ["--epochs", "1", "--dim", "8", "--hidden-dim", "8", "--no-progress"]
    trained = run_cli(settings, "train", "--events", str(events), "--out", str(model), *tiny)
    assert trained.returncode == 0, trained.stderr
    published = run_cli(settings, "model", "publish", "--model", str(model))
    assert published.returncode == 0, published.stderr
    assert published.stdout.startswith("published ")

    # The reference recommender reads its three topics with the same settings (TLS and SASL included).
    recommender = Recommender(Coverage(60.0))
    follower = Follower.from_settings(settings, recommender, RecommendMetrics(CollectorRegistry()))
    try:
        follower.bootstrap(timeout_s=60.0)
    finally:
        follower.close()
    assert "secured-user" in recommender.profiles
    assert len(recommender.catalog.loaded) == 1, "the published item vectors, read back over SASL_SSL"

    erased = run_cli(settings, "erase", "secured-user")
    assert erased.returncode == 0, erased.stderr
    wait_until(lambda: profile_count() == 0 and isinstance(seen[-1], ProfileDeleted), 60, "the tombstone",
               workers=(worker,))  # fmt: skip
    subscriber.close()

    assert worker.stop() == 0
    outputs = (created.stdout, created.stderr, published.stdout, published.stderr, erased.stdout, erased.stderr)
    for output in (*outputs, worker.log_text()):
        assert password not in output


REFUSED_ATTEMPTS = 3
"""CLI runs a wrong-password test may take. kafka-python 3.0.12 (the newest) drops the broker's answer when it
arrives in one read with the broker's close of the connection (``kafka/net/transport.py``: the read loop aborts
on the end of the stream before handing the bytes it read to the protocol); on a loaded machine that happened
in 1 of 12 runs, and the CLI then ends with "Unable to bootstrap" alone (docs/security.md). A run that shows the
answer is what a user retrying sees; three runs without it fail the test."""


def _refused_cli(settings: Settings) -> subprocess.CompletedProcess[str]:
    """``topics create`` with a wrong password, run again (at most ``REFUSED_ATTEMPTS`` times) while the broker's
    answer was lost to the client's race above."""
    for _ in range(REFUSED_ATTEMPTS - 1):
        done = run_cli(settings, "topics", "create")
        if "invalid credentials" in done.stderr:
            return done
    return run_cli(settings, "topics", "create")


def test_a_wrong_password_is_refused_with_a_clear_message(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    settings = _settings(secured_broker, tmp_path, password_of="stranger")
    done = _refused_cli(settings)
    assert done.returncode == 4, done.stderr
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("profilestream: Kafka: ")
    assert secured_broker.password_file("stranger").read_text().strip() not in done.stderr


def test_a_principal_without_acls_is_refused(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    settings = _settings(secured_broker, tmp_path, user="stranger")
    done = run_cli(settings, "topics", "create")
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("profilestream: Kafka: TopicAuthorizationFailedError"), done.stderr


def test_each_role_may_do_its_job_and_nothing_else(
    secured_broker: SecuredBroker, tmp_path: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    run = uuid.uuid4().hex[:8]
    logins = {
        user: _settings(secured_broker, tmp_path, user, run=run)
        for user in ("admin", "worker", "producer", "eraser", "subscriber")
    }
    admin, worker_login, producer_login, eraser_login, subscriber_login = logins.values()
    assert run_cli(admin, "topics", "create").returncode == 0
    for role in ("worker", "producer", "eraser", "subscriber"):
        applied = run_cli(admin, "acls", "apply", "--principal", f"User:{role}", "--role", role)
        assert applied.returncode == 0, applied.stderr

    subscriber = ProfileSubscriber.from_settings(subscriber_login)
    worker = start_worker(worker_login, name="least-privilege-worker")
    with EventProducer.from_settings(producer_login) as producer:
        for i in range(2):
            producer.send(BrowseEvent(event_id=f"e{i}", user_id="acl-user", ts_ms=T0 + i, item_id="i"))

    def folded() -> bool:
        subscriber.poll(timeout_ms=200)
        latest = subscriber.profiles.get("acl-user")
        return latest is not None and latest.event_count == 2

    wait_until(folded, 120, "the profile, folded by the worker principal", workers=(worker,))

    # Erasure is the eraser's alone: the producer may send events but not erase anybody.
    refused = run_cli(producer_login, "erase", "acl-user")
    assert refused.returncode == 4, refused.stderr
    assert "TopicAuthorizationFailedError" in refused.stderr.strip().splitlines()[-1]
    erased = run_cli(eraser_login, "erase", "acl-user")
    assert erased.returncode == 0, erased.stderr

    def erased_from_profiles() -> bool:
        subscriber.poll(timeout_ms=200)
        return "acl-user" not in subscriber.profiles

    wait_until(erased_from_profiles, 60, "the eraser's erasure to be executed", workers=(worker,))
    subscriber.close()
    # ... and the eraser may not send events; neither may the worker nor a subscriber. Each refusal shows in the
    # send's future and again when the producer closes (the SDK's flush raises for what was not delivered).
    for login, event_id in ((eraser_login, "y"), (worker_login, "x"), (subscriber_login, "z")):
        as_other = EventProducer.from_settings(login)
        future = as_other.send(BrowseEvent(event_id=event_id, user_id="acl-user", ts_ms=T0 + 5, item_id="i"))
        with pytest.raises(TopicAuthorizationFailedError):
            future.get(timeout=60)
        with pytest.raises(UndeliveredError) as undelivered:
            as_other.close()
        assert isinstance(undelivered.value.first, TopicAuthorizationFailedError)

    # The producer may not create topics.
    refused = run_cli(producer_login, "topics", "create")
    assert refused.returncode == 4
    assert "TopicAuthorizationFailedError" in refused.stderr.strip().splitlines()[-1]
    assert worker.stop() == 0


def test_a_worker_with_a_wrong_password_says_so_and_never_shows_it(
    secured_broker: SecuredBroker, tmp_path: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = _settings(secured_broker, tmp_path, password_of="stranger")
    worker = start_worker(settings, name="wrong-login-worker")
    wait_until(lambda: "invalid credentials" in worker.log_text() or not worker.alive(), 120,
               "the worker to report the refused login", detail=lambda: worker.log_tail(2000))  # fmt: skip
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in worker.log_text()
    worker.stop()
    assert secured_broker.password_file("stranger").read_text().strip() not in worker.log_text()
