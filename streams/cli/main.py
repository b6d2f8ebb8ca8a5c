"""The ``profilestream`` command line: worker, topics, producing, demo traffic and reading profiles.

Every flag that maps to a setting shows its ``PROFILESTREAM_*`` variable; a flag wins over the variable.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, BinaryIO, ClassVar, NoReturn, TypeAlias

from kafka.errors import KafkaError

from models.errors import ModelError
from streams.cli.model import positive_int, register
from streams.client.acls import ROLES
from streams.client.secret_files import SecretConfigError
from streams.contract.erasure import ERASURE_REASONS
from streams.offline.trivago import TrivagoImportError
from streams.offline.yoochoose import YoochooseImportError
from streams.settings import ENV_PREFIX, Settings, load_settings

if TYPE_CHECKING:  # imported where used: the SDK pulls in kafka-python's producer, which most commands never need
    from streams.client.producer import EventProducer

Handler = Callable[[argparse.Namespace, Settings], int]

EXIT_CONFIG = 2
"""Exit code of a command stopped by a setting that cannot be used (a secret file, TLS files)."""
EXIT_INPUT = 2
"""Exit code of a command stopped by an input it cannot use: a missing or unreadable file, a checkpoint or data file
that is not what it should be, data a model cannot be trained or evaluated on (as argparse exits for an argument)."""
EXIT_KAFKA = 4
"""Exit code of a command that Kafka refused or did not answer (a wrong login, a missing ACL, no broker)."""
MAX_LINE_BYTES = 2 * 65_536
"""The longest line ``produce`` reads whole: an event's limit (64 KiB) and as much again for whitespace around it."""
MAX_REPORTED_LINES = 1_000
"""Lines ``produce`` names one by one when the broker did not take them; beyond that, a count."""
ERASE_WAIT_S = 60.0
"""How long ``profilestream erase`` waits for the broker to acknowledge the request."""


def _setting_flag(parser: argparse.ArgumentParser, name: str, type_: type = str, help_: str = "") -> None:
    """Add ``--name`` for the setting ``name``; its help names the environment variable."""
    field = Settings.model_fields[name]
    env = f"{ENV_PREFIX}{name.upper()}"
    parser.add_argument(
        f"--{name.replace('_', '-')}",
        dest=name,
        type=type_,
        default=None,
        help=f"{help_ or field.description} [env {env}, default {_shown(field.default)}]",
    )


def _shown(default: object) -> str:
    return repr(default) if isinstance(default, str) else str(default)


KAFKA_SECURITY_FLAGS = (
    "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password_file",
    "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
)  # fmt: skip
"""The security settings every Kafka command takes as flags. The password itself has no flag (a command line is
visible to every user of the machine): it comes from its file or from PROFILESTREAM_KAFKA_SASL_PASSWORD."""


def _kafka_flags(parser: argparse.ArgumentParser) -> None:
    _setting_flag(parser, "kafka_bootstrap")
    _setting_flag(parser, "topic_prefix")
    for name in KAFKA_SECURITY_FLAGS:
        _setting_flag(parser, name, type_=Path if name.endswith("file") else str)
    # Otherwise argparse would take `--kafka-sasl-password SECRET` for `--kafka-sasl-password-file`, and the secret
    # would show up as a file name in the error that follows.
    parser.allow_abbrev = False


def _settings_from(args: argparse.Namespace) -> Settings:
    names = set(Settings.model_fields)
    return load_settings(**{k: v for k, v in vars(args).items() if k in names})


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run a worker."""
    from streams.worker.main import run_worker

    return run_worker(settings)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Fold a history file into the worker table's changelog and the profile topic (before the workers start)."""
    events = Path(args.events)
    try:
        # Opened before torch is imported, the model loaded and Kafka reached: a wrong path is one line of error
        # at once, and no connection is made.
        with events.open("rb"):
            pass
    except OSError as exc:
        print(f"profilestream backfill: cannot read {events}: {exc.strerror or exc}", file=sys.stderr)
        return 2  # as argparse does for an argument it cannot use
    from models.errors import CheckpointError
    from models.threads import limit_threads
    from streams.worker.backfill import BackfillRefusedError, run_backfill
    from streams.worker.encoder_runtime import EncoderRuntime

    limit_threads(settings.torch_threads)
    try:
        encoder = EncoderRuntime.load(settings.model_dir, embedding_dim=settings.embedding_dim)
    except CheckpointError as exc:
        print(f"profilestream backfill: cannot load the model: {exc}", file=sys.stderr)
        return 3
    try:
        report = run_backfill(
            settings,
            events,
            encoder,
            force=args.force,
            batch_events=args.batch_events,
            progress=not args.no_progress and sys.stderr.isatty(),
            processes=args.processes,
        )
    except BackfillRefusedError as exc:
        print(f"profilestream backfill: refused: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # A topic missing or of the wrong shape, the broker refusing records (aiokafka's errors and the bulk
        # producer's DeliveryError are RuntimeErrors): one line, and what the operator should do about it.
        print(
            f"profilestream backfill: failed: {type(exc).__name__}: {_first_line(exc)}; batches acknowledged before "
            "it stay written (each user's state before its profile); run the same command again before any "
            "worker starts",
            file=sys.stderr,
        )
        return EXIT_KAFKA
    print(f"backfill with model {encoder.model_version}: {report.summary()}")
    return 0


def cmd_recommend(args: argparse.Namespace, settings: Settings) -> int:
    """Run the reference recommender (docs/recommend.md)."""
    logging.getLogger().setLevel(settings.log_level.upper())
    from streams.recommend.main import run_recommender

    return run_recommender(settings)


def cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    """Run the feedback consumer: impressions joined with clicks, CTR metrics (docs/recommend.md)."""
    logging.getLogger().setLevel(settings.log_level.upper())
    from streams.feedback.main import run_feedback

    return run_feedback(settings)


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create the topics (idempotent)."""
    from streams.client.admin import TopicsMismatchError, create_topics

    try:
        created = create_topics(settings)
    except TopicsMismatchError as exc:
        print(f"profilestream topics create: {exc}", file=sys.stderr)
        return EXIT_INPUT
    for name, outcome in created.items():
        print(f"{name}: {outcome}")
    return 0


def cmd_acls_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Create the ACLs one role needs for a principal (run with an administrator's Kafka login)."""
    from streams.client.acls import apply_grants, check_principal

    try:
        check_principal(args.principal)  # before connecting: a wildcard would grant the role to everyone
    except ValueError as exc:
        print(f"profilestream acls apply: {exc}", file=sys.stderr)
        return EXIT_INPUT
    count = apply_grants(settings, args.principal, args.role)
    print(f"{count} ACLs for {args.principal} as {args.role}")
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    """Send the events of a JSON-lines file; invalid lines are reported by number and skipped, and so are lines the
    broker did not take (exit 4), so that exactly those can be sent again.

    Each line is sent as it is (fields of the producer's own included), keyed by its ``user_id``, after the SDK's
    check, which is the only one: what it refuses, a ``ts`` too far in the future included, is a reported line.
    """
    import contextlib

    from streams.client.producer import EventProducer
    from streams.contract.decoder import InvalidEventError

    sent = bad = 0
    # (line number, error) of each record the broker refused or never acknowledged, and the futures of the records
    # whose outcome is not known yet; changed from kafka-python's I/O thread (single dict and list operations are
    # atomic), read after the flush.
    undelivered: list[tuple[int, BaseException]] = []
    pending: dict[int, object] = {}
    stopped_at: tuple[int, KafkaError] | None = None
    with contextlib.ExitStack() as stack:
        try:
            # Opened before connecting: a wrong path is one line of error, and no connection is made.
            lines = stack.enter_context(Path(args.file).open("rb"))
        except OSError as exc:
            print(f"profilestream produce: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 2  # as argparse does for an argument it cannot use
        producer = EventProducer.from_settings(settings)
        try:
            for number, line in enumerate(_bounded_lines(lines, MAX_LINE_BYTES), start=1):
                if line is None:
                    bad += 1
                    print(f"line {number}: too_large: the line is longer than {MAX_LINE_BYTES} bytes", file=sys.stderr)
                    continue
                value = line.strip()
                if not value:
                    continue
                try:
                    future = producer.send_json(value)
                except InvalidEventError as exc:
                    bad += 1
                    print(f"line {number}: {exc.reason.value}: {exc.detail}", file=sys.stderr)
                    continue
                except KafkaError as exc:
                    # No metadata for the topic in time, say: this line and those after it were not sent.
                    stopped_at = (number, exc)
                    break
                pending[number] = future
                future.add_callback(_settled, pending, number)
                future.add_errback(_failed, pending, undelivered, number)
                sent += 1
        finally:
            # Closing flushes and waits for kafka-python's I/O thread, so every outcome it will report is in by then.
            _close_reporting(producer)
        undelivered.extend((number, _NotConfirmedError()) for number in list(pending))
    return _report_produced(sent, bad, undelivered, stopped_at)


def _report_produced(
    sent: int, bad: int, undelivered: list[tuple[int, BaseException]], stopped_at: tuple[int, KafkaError] | None
) -> int:
    """Name the lines the broker did not take, print the tally, and return ``produce``'s exit code."""
    for number, error in sorted(undelivered, key=lambda pair: pair[0])[:MAX_REPORTED_LINES]:
        print(f"line {number}: not delivered: {type(error).__name__}", file=sys.stderr)
    if len(undelivered) > MAX_REPORTED_LINES:
        print(f"... and {len(undelivered) - MAX_REPORTED_LINES} more lines not delivered", file=sys.stderr)
    if stopped_at is not None:
        number, error = stopped_at
        print(f"line {number}: not sent: {type(error).__name__}: {_first_line(error)}; stopped there", file=sys.stderr)
    tally = f"sent {sent - len(undelivered)} events"
    if undelivered:
        tally += f", {len(undelivered)} not delivered"
    print(f"{tally}, skipped {bad} invalid lines")
    if undelivered or stopped_at is not None:
        return EXIT_KAFKA
    return 0 if bad == 0 else 1


def _bounded_lines(stream: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """The lines of ``stream``, each read into at most ``limit`` bytes: a longer line is None (its rest is read in
    pieces and dropped), so one enormous line cannot take the memory of the whole file."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
            pass
        yield None


def _close_reporting(producer: EventProducer) -> None:
    """Close ``produce``'s producer; delivery failures are reported line by line by the caller, and a failure of
    the flush as a whole (kafka-python's flush gives up on futures that never complete after a fatal error of its
    idempotent producer, and those lines count as not confirmed) in one line here."""
    from streams.client.producer import UndeliveredError

    try:
        producer.close()
    except UndeliveredError:
        pass
    except KafkaError as exc:
        print(f"profilestream produce: Kafka: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)


def _settled(pending: dict[int, object], number: int, _metadata: object) -> None:
    """A record's delivery was confirmed (kafka-python's callback)."""
    pending.pop(number, None)


def _failed(
    pending: dict[int, object], undelivered: list[tuple[int, BaseException]], number: int, error: BaseException
) -> None:
    """A record's delivery failed (kafka-python's errback)."""
    undelivered.append((number, error))
    pending.pop(number, None)


class _NotConfirmedError(Exception):
    """The outcome of a record the broker did not confirm before the command ended (it may have arrived)."""


class _StopFlag:
    """Set by SIGINT/SIGTERM so long-running loops end cleanly."""

    def __init__(self) -> None:
        self.stopped = False
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True


def cmd_demo_traffic(args: argparse.Namespace, settings: Settings) -> int:
    """Send generated events at a steady rate until the duration ends or the process is stopped."""
    from streams.client.producer import EventProducer, now_ms
    from streams.offline.demo import DemoTraffic

    stop = _StopFlag()
    traffic = DemoTraffic(args.users, seed=args.seed)
    sent = 0
    started = time.monotonic()
    with EventProducer.from_settings(settings) as producer:
        while not stop.stopped:
            elapsed = time.monotonic() - started
            if args.duration is not None and elapsed >= args.duration:
                break
            due = int(elapsed * args.rate) + 1
            while sent < due:
                producer.send(traffic.next_event(ts_ms=now_ms()))
                sent += 1
            time.sleep(min(0.05, 1 / args.rate))
        producer.flush()
    print(f"demo traffic: sent {sent} events for {args.users} users")
    return 0


def cmd_demo_events(args: argparse.Namespace, settings: Settings) -> int:
    """Write generated events to a JSON-lines file (training data for the demo model, benchmark input)."""
    from streams.contract.events import encode_event
    from streams.offline.demo import DemoTraffic

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    traffic = DemoTraffic(args.users, seed=args.seed)
    with out.open("wb") as lines:
        for event in traffic.events(args.count):
            lines.write(encode_event(event) + b"\n")
    print(f"wrote {args.count} events of {args.users} users to {out}")
    return 0


def cmd_profiles_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Print profile updates as they arrive (after the existing ones when --from-beginning)."""
    from streams.client.subscriber import ProfileDeleted, ProfileSubscriber

    stop = _StopFlag()
    with ProfileSubscriber.from_settings(settings) as subscriber:
        if not args.from_beginning:
            subscriber.bootstrap()
        printed = 0
        while not stop.stopped and (args.max is None or printed < args.max):
            for change in subscriber.poll(timeout_ms=500):
                if args.max is not None and printed >= args.max:
                    break
                if isinstance(change, ProfileDeleted):
                    print(json.dumps({"user_id": change.user_id, "deleted": True}), flush=True)
                else:
                    shown = change.to_dict()
                    if not args.full:
                        shown["embedding"] = [round(x, 3) for x in change.embedding[:4]] + ["..."]
                    print(json.dumps(shown), flush=True)
                printed += 1
    return 0


def cmd_profiles_versions(args: argparse.Namespace, settings: Settings) -> int:
    """Count every user's latest profile on the profile topic by model version (what a new consumer reads)."""
    from collections import Counter

    from streams.client.subscriber import ProfileSubscriber

    with ProfileSubscriber.from_settings(settings) as subscriber:
        latest = subscriber.bootstrap()
    counts = Counter(profile.model_version for profile in latest.values())
    print(json.dumps({"users": len(latest), "model_versions": dict(sorted(counts.items()))}, indent=2))
    if args.expect is not None:
        # No profile at all (an empty topic, a wrong prefix) is not a finished rollout.
        return 0 if counts and set(counts) == {args.expect} else 1
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Ask the workers to erase a user's state and profile; prints the request id the worker logs."""
    from streams.client.producer import EventProducer
    from streams.contract.erasure import InvalidErasureError

    with EventProducer.from_settings(settings) as producer:
        try:
            # Waits for the broker: a refused request (no ACL for privacy.erasure) must not read as requested.
            request_id = producer.request_erasure(args.user_id, reason=args.reason, wait_s=ERASE_WAIT_S)
        except InvalidErasureError as exc:
            print(f"profilestream erase: not sent: {exc}", file=sys.stderr)
            return 2
    print(f"erasure requested: request id {request_id}")
    return 0


def cmd_pseudonym(args: argparse.Namespace, settings: Settings) -> int:
    """Print ``<user id> <pseudonym>`` per id: what to look up, recommend for or erase when producers pseudonymise."""
    from streams.client.pseudonym import Pseudonymiser

    pseudonymiser = Pseudonymiser.from_secret(settings.pseudonym_key, settings.pseudonym_key_file)
    if pseudonymiser is None:
        print("profilestream pseudonym: no key: set --pseudonym-key-file or its variable", file=sys.stderr)
        return EXIT_CONFIG
    for user_id in args.user_ids:
        print(user_id, pseudonymiser(user_id))
    return 0


def _stores(settings: Settings) -> list[Path]:
    from streams.worker.store_layout import worker_stores

    return worker_stores(settings.state_dir)


def _state_tool_failed(exc: Exception, command: str) -> int:
    """One line for a state directory or record the tool cannot use (exit 2, never 1: 1 means "no record")."""
    print(f"profilestream state {command}: {_first_line(exc)}", file=sys.stderr)
    return EXIT_INPUT


def cmd_state_inspect(args: argparse.Namespace, settings: Settings) -> int:
    """Print one user's stored record (read-only; safe while the worker runs); exit 1 when there is none, 2 when
    the state directory or the record cannot be read."""
    from state.describe import describe_record
    from state.errors import StateError
    from state.reader import read_user

    spec = settings.state_spec()
    try:
        record = read_user(_stores(settings), args.user_id, spec)
    except StateError as exc:
        return _state_tool_failed(exc, "inspect")
    if record is None:
        print("no record for this user in this state directory", file=sys.stderr)
        return 1
    print(json.dumps(describe_record(record, spec), indent=2))
    return 0


def cmd_state_stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print the store's size, user count and bytes per user (read-only; safe while the worker runs); with
    ``--check``, exit 1 when a stored value does not decode; 2 when the state directory cannot be read."""
    from state.describe import describe_stats
    from state.errors import StateError
    from state.reader import store_stats
    from streams.worker.store_layout import OFFSET_KEY, partition_of

    try:
        stats = store_stats(
            _stores(settings), check_values=args.check, skip_keys=frozenset({OFFSET_KEY}), partition_of=partition_of
        )
    except StateError as exc:
        return _state_tool_failed(exc, "stats")
    print(json.dumps(describe_stats(stats), indent=2))
    return 1 if args.check and any(p.undecodable for p in stats.partitions) else 0


# argparse exposes no public name for the sub-command collection (and it is generic only to type checkers).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

WORKER_SETTINGS = (
    "app_id", "state_dir", "partitions", "batch_max_events", "metrics_bind", "metrics_port",
    "web_bind", "web_port", "torch_threads", "embedding_dim", "user_ttl_ms", "allowed_lateness_ms",
    "recent_window", "expiry_interval_s", "model_rebuild_per_s", "model_failure_linger_s", "log_level",
)  # fmt: skip


BACKFILL_SETTINGS = (
    "app_id", "partitions", "replication_factor", "torch_threads", "embedding_dim", "user_ttl_ms",
    "allowed_lateness_ms", "recent_window",
)  # fmt: skip


def _add_service_commands(sub: Subparsers) -> None:
    worker = sub.add_parser("worker", help="run a stream worker")
    _kafka_flags(worker)
    for name in WORKER_SETTINGS:
        _setting_flag(worker, name, type_=type(Settings.model_fields[name].default))
    _setting_flag(worker, "model_dir", type_=Path)
    _setting_flag(worker, "lookup_token_file", type_=Path)
    worker.set_defaults(handler=cmd_worker)

    backfill = sub.add_parser(
        "backfill", help="fold a history file into the workers' state and the profile topic before they start"
    )
    backfill.add_argument("--events", required=True, help="contract-v1 JSON-lines file of the history")
    backfill.add_argument(
        "--force",
        action="store_true",
        help="write even if the worker group has committed offsets (never while it has live members)",
    )
    backfill.add_argument("--batch-events", type=int, default=50_000, help="events folded per encoder call")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.add_argument(
        "--processes", type=int, default=1, help="processes that fold batches in parallel (one core each)"
    )
    _kafka_flags(backfill)
    for name in BACKFILL_SETTINGS:
        _setting_flag(backfill, name, type_=type(Settings.model_fields[name].default))
    _setting_flag(backfill, "model_dir", type_=Path)
    backfill.set_defaults(handler=cmd_backfill)

    recommend = sub.add_parser(
        "recommend", help="serve recommendations from the profile topic and the published item vectors"
    )
    _kafka_flags(recommend)
    for name in (
        "recommend_bind",
        "recommend_port",
        "recommend_bootstrap_timeout_s",
        "recommend_coverage_window_s",
        "log_level",
    ):
        _setting_flag(recommend, name, type_=type(Settings.model_fields[name].default))
    recommend.set_defaults(handler=cmd_recommend)

    feedback = sub.add_parser("feedback", help="count impressions and clicks: CTR@k and clicks per impression")
    _kafka_flags(feedback)
    for name in ("feedback_bind", "feedback_port", "feedback_attribution_window_s", "log_level"):
        _setting_flag(feedback, name, type_=type(Settings.model_fields[name].default))
    feedback.set_defaults(handler=cmd_feedback)

    topics = sub.add_parser("topics", help="manage topics").add_subparsers(dest="topics_command", required=True)
    create = topics.add_parser("create", help="create the topics (idempotent)")
    _kafka_flags(create)
    _setting_flag(create, "partitions", type_=int)
    _setting_flag(create, "replication_factor", type_=int)
    create.set_defaults(handler=cmd_topics_create)

    acls = sub.add_parser("acls", help="manage Kafka ACLs").add_subparsers(dest="acls_command", required=True)
    apply = acls.add_parser("apply", help="allow a principal what one role needs, and nothing more")
    apply.add_argument("--principal", required=True, help="the Kafka principal, e.g. User:profilestream-worker")
    apply.add_argument("--role", required=True, choices=ROLES, help="worker, producer, eraser or subscriber")
    _kafka_flags(apply)
    _setting_flag(apply, "app_id")
    apply.set_defaults(handler=cmd_acls_apply)


def _positive_rate(text: str) -> float:
    """A rate in events per second: a finite number above 0 (the loop divides by it)."""
    import math

    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (rate > 0 and math.isfinite(rate)):
        raise argparse.ArgumentTypeError(f"must be a number of events per second above 0, not {text}")
    return rate


def _add_producer_commands(sub: Subparsers) -> None:
    produce = sub.add_parser("produce", help="send the contract-v1 events of a JSON-lines file")
    produce.add_argument("file", help="JSON-lines file, one event per line")
    _kafka_flags(produce)
    _setting_flag(produce, "pseudonym_key_file", type_=Path)
    produce.set_defaults(handler=cmd_produce)

    demo = sub.add_parser("demo-traffic", help="send generated events at a steady rate")
    demo.add_argument("--users", type=positive_int, default=1000, help="number of generated users")
    demo.add_argument("--rate", type=_positive_rate, default=100.0, help="events per second (above 0)")
    demo.add_argument("--duration", type=float, default=None, help="seconds to run (default: until stopped)")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the generator")
    _kafka_flags(demo)
    _setting_flag(demo, "pseudonym_key_file", type_=Path)
    demo.set_defaults(handler=cmd_demo_traffic)

    demo_events = sub.add_parser("demo-events", help="write generated events to a JSON-lines file")
    demo_events.add_argument("--users", type=positive_int, default=1000, help="number of generated users")
    demo_events.add_argument("--count", type=positive_int, default=50_000, help="number of events")
    demo_events.add_argument("--seed", type=int, default=7, help="random seed of the generator")
    demo_events.add_argument("--out", required=True, help="output JSON-lines file")
    demo_events.set_defaults(handler=cmd_demo_events)

    erase = sub.add_parser("erase", help="request erasure of a user's state and profile")
    erase.add_argument("user_id", help="the user to erase")
    erase.add_argument("--reason", choices=ERASURE_REASONS, default="user_request", help="why (default: user_request)")
    _kafka_flags(erase)
    _setting_flag(erase, "pseudonym_key_file", type_=Path)
    erase.set_defaults(handler=cmd_erase)

    pseudonym = sub.add_parser("pseudonym", help="print the keyed pseudonym of user ids (docs/security.md)")
    pseudonym.allow_abbrev = False  # as every command with secret flags: a prefix must not read as --pseudonym-key
    pseudonym.add_argument("user_ids", nargs="+", metavar="user_id", help="the ids to map")
    _setting_flag(pseudonym, "pseudonym_key_file", type_=Path)
    pseudonym.set_defaults(handler=cmd_pseudonym)


def _add_reader_commands(sub: Subparsers) -> None:
    profiles = sub.add_parser("profiles", help="read profiles").add_subparsers(dest="profiles_command", required=True)
    tail = profiles.add_parser("tail", help="print profile updates as they arrive")
    tail.add_argument("--from-beginning", action="store_true", help="print the whole compacted topic first")
    tail.add_argument("--full", action="store_true", help="print whole embeddings")
    tail.add_argument("--max", type=int, default=None, help="stop after this many updates")
    _kafka_flags(tail)
    tail.set_defaults(handler=cmd_profiles_tail)

    versions = profiles.add_parser("versions", help="count the users' latest profiles by model version")
    versions.add_argument(
        "--expect", default=None, help="exit 1 unless every latest profile has this model version (a rollout check)"
    )
    _kafka_flags(versions)
    versions.set_defaults(handler=cmd_profiles_versions)

    state = sub.add_parser("state", help="read a worker's state directory").add_subparsers(
        dest="state_command", required=True
    )
    inspect = state.add_parser("inspect", help="print one user's record")
    inspect.add_argument("user_id", help="the user to show")
    stats = state.add_parser("stats", help="print the store's size, users and bytes per user")
    stats.add_argument("--check", action="store_true", help="decode every record too; exit 1 if one does not decode")
    for state_cmd, handler in ((inspect, cmd_state_inspect), (stats, cmd_state_stats)):
        _setting_flag(state_cmd, "state_dir", type_=Path)
        state_cmd.set_defaults(handler=handler)


SECRET_FLAG_PREFIXES = ("--kafka-sasl-password", "--lookup-token", "--pseudonym-key")
"""Flags a secret would follow if it had one: none has (secrets come from files or the environment), so argparse
refuses them, and its error would repeat the value typed after them."""


def secret_values(argv: Sequence[str]) -> frozenset[str]:
    """The values typed after (or with ``=``) a flag of ``SECRET_FLAG_PREFIXES`` in ``argv``."""
    values: set[str] = set()
    for position, token in enumerate(argv):
        flag, equals, value = token.partition("=")
        if flag.startswith(SECRET_FLAG_PREFIXES) and not flag.endswith("-file"):
            if equals:
                values.add(value)
            elif position + 1 < len(argv):
                values.add(argv[position + 1])
    return frozenset(value for value in values if value)


class _CliParser(argparse.ArgumentParser):
    """argparse's parser, whose error messages never repeat a value of :func:`secret_values` (``hidden``, set by
    :func:`main` for the command line it parses; sub-command parsers are of this class too)."""

    hidden: ClassVar[frozenset[str]] = frozenset()

    def error(self, message: str) -> NoReturn:
        for value in self.hidden:
            message = message.replace(value, "<hidden>")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser: argparse.ArgumentParser = _CliParser(prog="profilestream", description=__doc__)
    parser.add_argument("--cli-log-level", default="info", help="log level of the command line tool itself")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_service_commands(sub)
    _add_producer_commands(sub)
    _add_reader_commands(sub)
    register(sub, _kafka_flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``profilestream`` console script."""
    parser = build_parser()
    _CliParser.hidden = secret_values(list(argv) if argv is not None else sys.argv[1:])
    args = parser.parse_args(argv)
    configure_logging(args.cli_log_level)
    settings = _settings_from(args)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except SecretConfigError as exc:
        print(f"profilestream: configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KafkaError as exc:
        # One line an operator can act on (a refused login, a missing ACL, an unreachable broker) instead of a
        # traceback; the client's log lines above it say what the broker answered.
        print(f"profilestream: Kafka: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)
        return EXIT_KAFKA
    except (ModelError, TrivagoImportError, YoochooseImportError) as exc:
        # Input the command cannot use (a checkpoint, a data file, the data of a run): the message names the file
        # and what is wrong with it, never a value from it.
        print(f"profilestream: {_first_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:
        print(f"profilestream: {_os_error_text(exc)}", file=sys.stderr)
        return EXIT_INPUT


def configure_logging(level: str) -> None:
    """The CLI's log lines at ``level``; never kafka-python's admin client below INFO, which logs its whole
    configuration at DEBUG, the SASL password included."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka.admin.client").setLevel(max(logging.INFO, logging.getLogger().level))


def _os_error_text(exc: OSError) -> str:
    """`<file>: <what the system said>` (a missing file, a directory given for a file, no permission)."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


if __name__ == "__main__":
    sys.exit(main())
