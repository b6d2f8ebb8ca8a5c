"""How many threads the numeric libraries may use: the worker's parallelism is its processes."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits


def limit_threads(threads: int) -> None:
    """Let torch and numpy's BLAS (OpenBLAS starts a thread per core by default) use at most `threads` each."""
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
