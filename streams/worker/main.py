"""Start-up of a worker process: metrics first, then the model, then Faust."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from models.errors import CheckpointError
from models.threads import limit_threads
from state.record_cache import RecordCache
from state.spec import StateSpec
from streams.client.security import security_warnings
from streams.contract.decoder import Reason
from streams.settings import Settings
from streams.worker.encoder_runtime import EncoderRuntime
from streams.worker.gc_tuning import restore_garbage_collector, tune_garbage_collector
from streams.worker.metrics import WorkerMetrics
from streams.worker.processor import BatchProcessor

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

EXIT_MODEL_LOAD_FAILED = 3


ProcessorFactory = Callable[[EncoderRuntime, StateSpec, WorkerMetrics, RecordCache], BatchProcessor]


def batch_processor(
    encoder: EncoderRuntime, spec: StateSpec, metrics: WorkerMetrics, cache: RecordCache
) -> BatchProcessor:
    """The worker's processor as shipped."""
    return BatchProcessor(encoder, spec, metrics, cache=cache)


def _drop_stale_stores(settings: Settings) -> None:
    """Partition databases too old to be caught up from the changelog are dropped (streams.worker.state_purge)."""
    from streams.worker.state_purge import drop_stale_stores, stale_store_age_s
    from streams.worker.store_layout import worker_stores_on_disk

    max_age_s = stale_store_age_s(settings)
    for store in drop_stale_stores(worker_stores_on_disk(settings.state_dir), max_age_s, time.time()):
        log.warning(
            "state partition database %s untouched for more than %.0f s (the changelog may no longer hold the "
            "deletions since): dropped, faust restores it from the changelog",
            store.name,
            max_age_s,
        )


def faust_worker(app: faust.App, log_level: str) -> faust.Worker:
    """faust's ``Worker`` for ``app``, logging at ``log_level``, without its terminal spinner.

    faust keeps the spinner at WARNING and above, and to spin it on every record it sets the root logger to
    DEBUG: at ``warning`` or ``error`` every debug line of aiokafka, faust and mode (several per fetch request,
    one per partition in it) was built and handed to a handler that dropped it. Without the spinner the root
    logger keeps the level asked for.
    """
    from faust import Worker

    worker = Worker(app, loglevel=log_level, quiet=True)
    worker.spinner = None
    return worker


def run_worker(
    settings: Settings, spec: StateSpec | None = None, processor_factory: ProcessorFactory = batch_processor
) -> int:
    """Run a worker until it is stopped (SIGINT/SIGTERM); returns the process exit code.

    ``processor_factory`` lets the benchmarks run another batch design in the very same worker.
    """
    from streams.worker.app import ProfileWorker
    from streams.worker.log_limits import install_log_rate_limit

    # After the imports above: the filter attaches to the loggers of the Kafka clients, faust and ours.
    install_log_rate_limit()

    limit_threads(settings.torch_threads)
    for warning in security_warnings(settings):
        log.warning("%s", warning)
    metrics = WorkerMetrics(CollectorRegistry(), reject_reasons=[reason.value for reason in Reason])
    server = metrics.start_http_server(settings.metrics_bind, settings.metrics_port) if settings.metrics_port else None
    try:
        encoder = EncoderRuntime.load(settings.model_dir, embedding_dim=settings.embedding_dim)
    except CheckpointError as exc:
        metrics.count_model_load_failure()
        log.error("cannot start: %s", exc)
        print(f"profilestream worker: cannot load the model: {exc}", flush=True)
        if server is not None:
            # Keep /metrics up a little so Prometheus scrapes the failure before the process exits.
            time.sleep(settings.model_failure_linger_s)
            server.shutdown()
        return EXIT_MODEL_LOAD_FAILED
    log.info("model %s loaded", encoder.model_version)
    spec = spec or settings.state_spec()
    _drop_stale_stores(settings)
    processor = processor_factory(encoder, spec, metrics, RecordCache(settings.state_cache_users))
    worker = ProfileWorker(settings, encoder, metrics, spec, processor=processor)
    runner = faust_worker(worker.app, settings.log_level)
    tune_garbage_collector()
    try:
        runner.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        restore_garbage_collector()
        if server is not None:
            server.shutdown()
    return 0
