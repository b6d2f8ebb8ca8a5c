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
from threadpoolctl import threadpool_limits
import numpy, torch
# Raised first: on a machine whose pools start at one thread, a limit that does nothing would pass otherwise.
threadpool_limits(limits=4, user_api="blas")
torch.set_num_threads(4)
before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
torch_before = torch.get_num_threads()
limit_threads(1)
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"before": before, "after": after, "torch_before": torch_before, "torch": torch.get_num_threads()}))
"""


def test_limit_threads_limits_numpys_blas_and_torch() -> None:
    # OPENBLAS_NUM_THREADS would set the same limit from outside; the test wants the call to do it.
    env_free = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env_free)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["after"], "threadpoolctl found no BLAS library in numpy: the limit would do nothing"
    assert min(seen["before"]) > 1 and seen["torch_before"] > 1, "the pools were not raised: nothing to limit"
    assert seen["after"] == [1] * len(seen["after"])
    assert seen["torch"] == 1
