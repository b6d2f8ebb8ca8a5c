"""Bench-only worker entry point: profilestream's worker with the naive processor injected.

``python -m bench.naive_worker`` reads the same ``PROFILESTREAM_*`` settings as ``profilestream worker`` and
starts the same Faust worker the same way as :func:`streams.worker_main.run_worker`; the only difference is the
processor handed to :class:`streams.worker.ProfileWorker`.
"""

from __future__ import annotations

import logging
import sys

import torch
from prometheus_client import CollectorRegistry

from bench.naive import NaiveProcessor
from streams.decoder import Reason
from streams.encoder_runtime import EncoderRuntime
from streams.metrics import WorkerMetrics
from streams.settings import Settings, load_settings

log = logging.getLogger(__name__)


def run_naive_worker(settings: Settings) -> int:
    """Run the naive worker until SIGINT/SIGTERM; returns the process exit code."""
    from faust import Worker

    from streams.worker import ProfileWorker

    torch.set_num_threads(settings.torch_threads)
    metrics = WorkerMetrics(CollectorRegistry(), reject_reasons=[reason.value for reason in Reason])
    server = metrics.start_http_server(settings.metrics_bind, settings.metrics_port) if settings.metrics_port else None
    encoder = EncoderRuntime.load(settings.model_dir, embedding_dim=settings.embedding_dim)
    spec = settings.state_spec()
    processor = NaiveProcessor(encoder, spec, metrics)
    worker = ProfileWorker(settings, encoder, metrics, spec, processor=processor)
    faust_worker = Worker(worker.app, loglevel=settings.log_level, quiet=True)
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        if server is not None:
            server.shutdown()
        log.warning(
            "naive encoder: %d windows, %d events re-encoded",
            processor.reencoder.windows_encoded,
            processor.reencoder.events_encoded,
        )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_naive_worker(load_settings()))
