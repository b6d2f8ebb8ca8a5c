"""Configuration: one frozen settings object, read once at start-up from ``PROFILESTREAM_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from state.spec import StateSpec

ENV_PREFIX = "PROFILESTREAM_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Every setting of profilestream; each field is read from ``PROFILESTREAM_<FIELD NAME IN CAPITALS>``."""

    # No infinite or NaN float: "inf" passes gt=0 and would make an interval or a timeout never end.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", allow_inf_nan=False)

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="How every client reaches the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) of the SASL protocols."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (the client's principal).")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password; prefer kafka_sasl_password_file, which keeps it out of the environment."
    )
    kafka_sasl_password_file: Path | None = Field(
        None, description="File holding the SASL password (one line; surrounding whitespace is ignored)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (unset: the system's CAs)."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="PEM client certificate, for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="PEM private key of the client certificate.")
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to (keep on in production)."
    )
    topic_prefix: str = Field("", description="Prefix of every topic name, to share a cluster between deployments.")
    partitions: int = Field(
        24,
        ge=1,
        description="Partitions of every topic (the most worker processes that can share the work); the same for all "
        "input topics. 24 divides evenly among 1, 2, 3, 4, 6, 8, 12 and 24 workers; see docs/operations.md.",
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor of the topics created by the admin step.")
    app_id: str = Field("profilestream", description="Faust app id: the consumer group and changelog topic prefix.")
    state_dir: Path = Field(Path("var/state"), description="Directory of the workers' RocksDB state.")
    model_dir: Path | None = Field(
        None,
        description="Checkpoint directory of the encoder; unset runs a freshly initialised, untrained encoder.",
    )
    model_failure_linger_s: float = Field(
        20.0,
        ge=0,
        description="Seconds /metrics stays up after a failed model load, before the worker exits.",
    )
    embedding_dim: int = Field(
        64, ge=2, description="Profile dimension of the untrained encoder (a checkpoint has its own)."
    )
    batch_max_events: int = Field(
        20_000,
        ge=1,
        description="Most events in one unit of work (a poll result is cut into units; none waits to fill). A user's "
        "events in one unit make one profile, so a large unit drains a backlog faster; it is folded in slices of "
        "users with the event loop let run between them.",
    )
    user_ttl_ms: int = Field(30 * 24 * 3600 * 1000, ge=1, description="Users idle this long (event time) are expired.")
    allowed_lateness_ms: int = Field(3600 * 1000, ge=0, description="How far behind a user's newest event one may be.")
    recent_window: int = Field(50, ge=1, description="Recent events kept per user, to rebuild the hidden vector.")
    consumer_session_timeout_s: float = Field(
        60.0,
        ge=6,
        le=90,
        description="Seconds the group waits for a silent worker before its partitions move: a killed worker's "
        "fail-over time. The broker's group.min.session.timeout.ms and group.max.session.timeout.ms bound it (6 s "
        "and 30 min by default since Kafka 2.3); faust's Kafka request timeout (90 s), which it may not exceed, "
        "caps it here.",
    )
    consumer_fetch_max_wait_ms: int = Field(
        1500,
        ge=1,
        le=1500,
        description="Longest the broker holds the worker's fetch when it finds no new records (faust's own 1,500 "
        "by default). While a unit of work runs, the next fetch may ask only for quiet partitions and block the "
        "inputs' next fetch this long: lower cut the stalls of one worker under heavy live traffic, but made drains "
        "of two workers slower (docs/performance.md); it also costs 1,000 / this fetch requests per second while "
        "idle.",
    )
    consumer_fetch_wait_while_busy_ms: int = Field(
        50,
        ge=1,
        le=1500,
        description="Longest the broker holds the worker's fetch while input records wait to be taken. Such a "
        "fetch asks only for quiet partitions and holds the inputs' next fetch back; 50 (against 1,500) cut one "
        "worker's p99 under live traffic at 3,000 events/s and its start-up to its first fetch from about 5 s to "
        "2 s, with drains of one and of two workers level or faster (docs/performance.md). At "
        "consumer_fetch_max_wait_ms or above it changes nothing.",
    )
    rebalance_settle_s: float = Field(
        0.5,
        ge=0,
        le=60,
        description="Seconds a worker waits after each rebalance before it reads state back and takes events "
        "(faust's stream_recovery_delay, 3 s by faust's default): workers that join within it share one "
        "generation. 0.5 keeps a takeover quick; several workers started at once under a backlog should wait "
        "longer, or the first to join drains alone and then hands partitions over (docs/performance.md).",
    )
    standby_replicas: int = Field(
        1,
        ge=0,
        description="Standby copies of each state partition that other workers keep by reading its changelog "
        "(faust's table_standby_replicas, 1 by default): a worker that takes a partition over from a failed one "
        "starts from its standby instead of the whole changelog. 0 saves that reading and disk, and a failover "
        "then restores the partition from the changelog first.",
    )
    align_max_idle_ms: int = Field(
        2000,
        ge=0,
        description="Longest wait for an input partition no fetch has answered for yet, or for a caught-up one the "
        "others have run more than the allowed lateness past, before the other topics go on without it.",
    )
    align_max_lag_wait_ms: int = Field(
        600_000,
        ge=0,
        description="Longest wait for an input partition known to hold unread events (a slow fetch, a broker coming "
        "back) before the other topics go on without it and its older events may come too late.",
    )
    align_settle_after_outage_ms: int = Field(
        30_000,
        ge=0,
        description="After the broker was away (no fetch answered for 5 s), how long an input partition with "
        "nothing unread still holds the other topics back: producers are delivering what they buffered meanwhile, "
        "one partition at a time (0: off).",
    )
    align_max_queued: int = Field(
        20_000, ge=2, description="Events held per input partition for alignment before its fetching pauses."
    )
    state_cache_users: int = Field(
        20_000, ge=0, description="Decoded records of recently active users kept in memory (0 disables the cache)."
    )
    state_compression: bool = Field(
        True,
        description="Compress the RocksDB state (LZ4, ZSTD on the last level); off, its files can be searched "
        "for a value, e.g. to check on disk that an erased user is gone.",
    )
    expiry_interval_s: float = Field(
        60.0, gt=0, description="Seconds between scans of the stored users (idle users, users of an old model)."
    )
    commit_interval_s: float = Field(
        1.0,
        gt=0,
        description="Seconds between commits of the input offsets the worker has finished (a crash redelivers at "
        "most this long of work, which the per-user positions then recognise); a deletion commits at once.",
    )
    model_rebuild_per_s: int = Field(
        200,
        ge=0,
        description="Users of another model version re-encoded from their windows per second in the background "
        "after a model rollout (0: only at each user's next event).",
    )
    gc_sweep_interval_s: float = Field(
        1800.0,
        gt=0,
        description="Seconds between full garbage-collector sweeps (the worker's only long collector pauses).",
    )
    torch_threads: int = Field(1, ge=1, description="Threads torch and numpy's BLAS may use in a worker.")
    metrics_bind: str = Field("127.0.0.1", description="Bind address of the Prometheus /metrics server.")
    metrics_port: int = Field(9308, ge=0, le=65535, description="Port of the /metrics server (0 disables it).")
    web_bind: str = Field("127.0.0.1", description="Bind address of the worker's HTTP lookup (Faust web).")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the worker's HTTP lookup (Faust web).")
    web_host: str | None = Field(
        None,
        description="Host name by which the other workers reach this worker's lookup, to forward a request for a "
        "user this worker does not own; unset: the bind address when it is one address, else the machine's "
        "host name.",
    )
    erasure_bound_ms: int = Field(
        24 * 3600 * 1000,
        ge=2,
        description="How long an erased user's old values may stay readable in the compacted topics (profiles, "
        "state changelog); sets their compaction when the topics are created.",
    )
    input_retention_ms: int | None = Field(
        None,
        ge=2,
        description="Retention of the input topics, set by `topics create` (unset: the broker's default, seven "
        "days). At most a third of erasure_bound_ms keeps erased users' raw events within the bound too, at the "
        "price of replaying less after an outage.",
    )
    lookup_token: SecretStr | None = Field(
        None,
        description="Bearer token the HTTP lookup asks for (unset: no token asked); prefer lookup_token_file.",
    )
    lookup_token_file: Path | None = Field(
        None, description="File holding the lookup's bearer token (one line; surrounding whitespace is ignored)."
    )
    pseudonym_key: SecretStr | None = Field(
        None,
        description="Secret key of the producer SDK's user-id pseudonyms (unset: ids are sent as they are); "
        "prefer pseudonym_key_file. At least 32 bytes; see docs/security.md.",
    )
    pseudonym_key_file: Path | None = Field(
        None, description="File holding the pseudonym key (one line; surrounding whitespace is ignored)."
    )
    log_level: str = Field("info", description="Log level of the worker.")
    recommend_bind: str = Field("127.0.0.1", description="Bind address of the recommender's HTTP server.")
    recommend_port: int = Field(
        8088, ge=1, le=65535, description="Port of the recommender's HTTP server (/recommendations, /metrics)."
    )
    recommend_max_connections: int = Field(
        256,
        ge=1,
        description="Connections the recommender's HTTP server serves at once (a thread each); one past it is "
        "answered 503 and closed.",
    )
    recommend_bootstrap_timeout_s: float = Field(
        900.0,
        gt=0,
        description="Longest the recommender may take to read its topics to their end at start-up before it gives "
        "up (a profile topic of 100,000 users took over 90 s on a busy 2-core machine).",
    )
    recommend_coverage_window_s: float = Field(
        3600.0, gt=0, description="Window of the recommender's coverage gauge (share of each catalogue shown)."
    )
    feedback_bind: str = Field("127.0.0.1", description="Bind address of the feedback consumer's /metrics server.")
    feedback_port: int = Field(9309, ge=1, le=65535, description="Port of the feedback consumer's /metrics server.")
    feedback_attribution_window_s: float = Field(
        1800.0,
        gt=0,
        description="Longest a click may follow its impression and still be attributed to it (CTR's window).",
    )

    def state_spec(self) -> StateSpec:
        """The state parameters these settings choose; the rest keep the defaults of ``state.spec``."""
        # Imported here: the client install (the SDK and its CLI commands) has no numpy, which state needs.
        from state.spec import StateSpec

        return StateSpec(
            user_ttl_ms=self.user_ttl_ms,
            allowed_lateness_ms=self.allowed_lateness_ms,
            recent_window=self.recent_window,
        )

    def topic(self, name: str) -> str:
        """The full name of a topic, with the configured prefix."""
        return f"{self.topic_prefix}{name}"


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, with explicit overrides (CLI flags) taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
