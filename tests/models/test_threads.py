"""limit_threads bounds numpy's BLAS as well as torch (checked in a fresh process: the limit is process-wide)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json
from threadpoolctl import threadpool_info
from models.threads import limit_threads
import numpy, torch
before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
limit_threads(1)
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"before": before, "after": after, "torch": torch.get_num_threads()}))
"""


def test_limit_threads_limits_numpys_blas_and_torch() -> None:
    # OPENBLAS_NUM_THREADS would set the same limit from outside; the test wants the call to do it.
    env_free = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env_free)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["after"], "threadpoolctl found no BLAS library in numpy: the limit would do nothing"
    assert seen["after"] == [1] * len(seen["after"])
    assert seen["torch"] == 1
