"""Mean and range of GRU4Rec's Recall@k and MRR@k over runs, from the logs of bench/gru4rec/run.sh.

Usage: python -m bench.gru4rec.summary LOG... (logs named <paramfile>.run<N>.log)
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

_METRIC = re.compile(r"\b(Recall|MRR)@(\d+)\s*[:=]\s*([0-9]*\.[0-9]+)")


def parse_log(text: str) -> dict[str, float]:
    """The last value of each Recall@k / MRR@k the log prints (GRU4Rec prints the test results last)."""
    found: dict[str, float] = {}
    for name, k, value in _METRIC.findall(text):
        found[f"{name.lower()}@{k}"] = float(value)
    return found


def summarise(logs: list[Path]) -> dict[str, dict[str, tuple[float, float, float, int]]]:
    """Parameter file -> metric -> (mean, min, max, runs)."""
    runs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for log in logs:
        setting = log.name.split(".run")[0]
        for metric, value in parse_log(log.read_text(encoding="utf-8", errors="replace")).items():
            runs[setting][metric].append(value)
    return {
        setting: {m: (sum(v) / len(v), min(v), max(v), len(v)) for m, v in metrics.items()}
        for setting, metrics in runs.items()
    }


def main(argv: list[str]) -> int:
    """Print a markdown row per parameter file: mean [min, max] of Recall@20 and MRR@20 (and @5, @10)."""
    table = summarise([Path(a) for a in argv])
    print("| GRU4Rec official | runs | Recall@5 | Recall@10 | Recall@20 | MRR@5 | MRR@10 | MRR@20 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for setting, metrics in sorted(table.items()):
        cells = []
        for metric in ("recall@5", "recall@10", "recall@20", "mrr@5", "mrr@10", "mrr@20"):
            if metric in metrics:
                mean, low, high, _ = metrics[metric]
                cells.append(f"{mean:.4f} [{low:.4f}, {high:.4f}]")
            else:
                cells.append("-")
        count = max((m[3] for m in metrics.values()), default=0)
        print(f"| {setting} | {count} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
