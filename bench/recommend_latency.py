"""The recommender under a paced request rate, and its memory per user and per item, on a broker of its own.

    python -m bench.recommend_latency --users 100000 --items 50000 --rate 200 --duration 60

Three topic sets are filled: empty, item vectors only, item vectors plus every user's profile and some
purchases. A recommender process (``profilestream recommend``, as an operator starts it) is started on each;
its resident memory once it serves gives the memory per item (items only minus empty) and per user (full
minus items only). On the full set, requests are offered open-loop at ``--rate`` per second (90 % known users,
10 % unknown) and each latency is measured from the request's scheduled time, so a stalled server is not
hidden by a client that waits for it. Profiles and vectors are generated like bench/ann.py's (seeded).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from kafka import KafkaProducer

from bench.ann import item_vectors, queries
from bench.broker import BenchBroker
from bench.procs import REPO_ROOT, free_port, settings_env
from bench.stats import percentile
from streams.client.admin import create_topics
from streams.client.items import publish_item_vectors
from streams.client.producer import EventProducer
from streams.contract.profile import ProfileUpdated
from streams.contract.topics import PROFILES
from streams.settings import Settings

MODEL_VERSION = "bench-recommend-v1"
DIM = 64


@dataclass(frozen=True)
class Latencies:
    """Client-side results of the paced run."""

    offered: int
    errors: int
    latencies_ms: list[float]


def _aggregates(rng: np.random.Generator) -> dict[str, object]:
    """Aggregates of the shape the worker publishes (docs/state.md), so a profile weighs what a real one does."""
    counts: dict[str, object] = {
        f"{kind}_count_{window}": int(rng.integers(0, 50))
        for window in ("1h", "24h", "7d")
        for kind in ("browse", "search", "purchase")
    }
    counts["purchase_count_30d"] = int(rng.integers(0, 10))
    counts["purchase_spend_30d"] = float(rng.integers(0, 100_000)) / 100
    for key in ("top_categories", "top_search_terms"):
        counts[key] = [{"hash": f"{int(rng.integers(0, 2**63)):016x}", "weight": 1.25} for _ in range(8)]
    return counts


def fill(settings: Settings, items: int, users: int, purchases: int, seed: int) -> None:
    """Publish ``items`` item vectors, then ``users`` profiles and ``purchases`` purchase events."""
    create_topics(settings)
    vectors = item_vectors(items, DIM, seed) if items else None
    if vectors is not None:
        ids = [f"item-{i:06d}" for i in range(items)]
        publish_item_vectors(
            settings.kafka_bootstrap, MODEL_VERSION, ids, vectors.tolist(), topic_prefix=settings.topic_prefix
        )
    if not users or vectors is None:
        return
    rng = np.random.default_rng(seed + 2)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, acks="all")
    embeddings = queries(vectors, users, seed)
    now_ms = time.time_ns() // 1_000_000
    for u, row in enumerate(embeddings):
        profile = ProfileUpdated(
            f"user-{u:07d}", 3, MODEL_VERSION, [round(float(x), 7) for x in row], now_ms, now_ms, 30, _aggregates(rng)
        )
        producer.send(settings.topic(PROFILES), key=profile.user_id.encode(), value=profile.to_bytes())
    producer.flush()
    producer.close()
    with EventProducer(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix) as events:
        for _ in range(purchases):
            user = f"user-{int(rng.integers(0, users)):07d}"
            item = f"item-{min(int(rng.pareto(1.2)), items - 1):06d}"
            events.purchase(user, item, quantity=1)
        events.flush()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Recommender:
    """A ``profilestream recommend`` child process."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.base = f"http://127.0.0.1:{settings.recommend_port}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "recommend"],
                env=settings_env(settings, PROFILESTREAM_LOG_LEVEL="warning"),
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    def wait_ready(self, timeout_s: float = 1200) -> float:
        """Seconds until /healthz answers (start-up has read every topic)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the recommender exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("the recommender did not become ready")

    def rss_bytes(self) -> int:
        """Resident memory now."""
        return _rss_bytes(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.terminate()
        self.proc.wait(timeout=60)


def paced_requests(base: str, users: int, rate_per_s: float, duration_s: float, seed: int) -> Latencies:
    """Offer GET /recommendations at a fixed rate from a pool of threads; latency from the scheduled time."""
    rng = np.random.default_rng(seed + 3)
    count = int(rate_per_s * duration_s)
    known = rng.random(count) < 0.9
    picks = rng.integers(0, users, count)
    paths = [
        f"/recommendations/user-{p:07d}?k=20" if k else f"/recommendations/nobody-{i}?k=20"
        for i, (p, k) in enumerate(zip(picks.tolist(), known.tolist(), strict=True))
    ]
    latencies = [0.0] * count
    errors = [0]
    next_index = [0]
    lock = threading.Lock()
    start = time.monotonic() + 0.5

    def run() -> None:
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= count:
                return
            due = start + i / rate_per_s
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                with urllib.request.urlopen(base + paths[i], timeout=30) as answer:
                    answer.read()
            except OSError:
                with lock:
                    errors[0] += 1
            latencies[i] = (time.monotonic() - due) * 1000

    threads = [threading.Thread(target=run, daemon=True) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Latencies(count, errors[0], sorted(latencies))


def main(argv: list[str] | None = None) -> int:
    """Fill the three topic sets, measure memory on each, then the paced latency on the full one."""
    parser = argparse.ArgumentParser(prog="python -m bench.recommend_latency", description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--purchases", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="requests offered per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of paced requests")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--port", type=int, default=29392, help="the benchmark broker's port (controller: +1)")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    broker = BenchBroker(args.port, args.port + 1, "var/kafka-bench-recommend")
    bootstrap = broker.start_fresh()
    try:
        rss: dict[str, int] = {}
        ready_s: dict[str, float] = {}
        for name, items, users in (("empty", 0, 0), ("items", args.items, 0), ("full", args.items, args.users)):
            settings = Settings(  # type: ignore[call-arg]
                kafka_bootstrap=bootstrap, topic_prefix=f"{name}.", partitions=4, recommend_port=free_port()
            )
            started = time.monotonic()
            fill(settings, items, users, args.purchases if users else 0, args.seed)
            print(f"{name}: filled in {time.monotonic() - started:.0f} s", file=sys.stderr)
            recommender = Recommender(settings, REPO_ROOT / "var" / "bench-recommend" / f"{name}.log")
            try:
                ready_s[name] = recommender.wait_ready()
                rss[name] = recommender.rss_bytes()
                if name == "full":
                    result = paced_requests(recommender.base, args.users, args.rate, args.duration, args.seed)
                    rss["after"] = recommender.rss_bytes()
            finally:
                recommender.stop()
    finally:
        broker.stop_and_wipe()
    lat = result.latencies_ms
    print(
        f"commit {commit.stdout.strip() or 'unknown'}; {os.cpu_count()} cores; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end; {args.users:,} users, {args.items:,} items x {DIM}, "
        f"{args.purchases:,} purchases"
    )
    print("| offered req/s | requests | errors | p50 ms | p90 ms | p99 ms | max ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.rate:.0f} | {result.offered:,} | {result.errors} | {percentile(lat, 50):.1f} | "
        f"{percentile(lat, 90):.1f} | {percentile(lat, 99):.1f} | {lat[-1]:.1f} |"
    )
    per_item = (rss["items"] - rss["empty"]) / args.items
    per_user = (rss["full"] - rss["items"]) / args.users
    print("| resident memory | empty | items only | full | full, after the run | per item | per user |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    mib = 1024 * 1024
    print(
        f"| MiB, or bytes per | {rss['empty'] / mib:.0f} | {rss['items'] / mib:.0f} | {rss['full'] / mib:.0f} | "
        f"{rss['after'] / mib:.0f} | {per_item:.0f} | {per_user:.0f} |"
    )
    ready = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in ready_s.items())
    print(f"start-up until serving: {ready}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
