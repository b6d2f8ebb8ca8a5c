"""CPU profile of a worker under load with py-spy (from the ``bench`` extra), and what the samples say.

py-spy samples the running process from outside (``--nonblocking``: it never pauses the worker) and writes
collapsed stacks, one ``frame;frame;...;frame count`` line per distinct stack, each frame ``function (file:line)``.
:func:`analyse` turns them into the share of samples spent in each function (self and inclusive) and in a few
named parts of the worker.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE_HZ = 100

PARTS: tuple[tuple[str, str], ...] = (
    # The worker calls decode (as polls arrive) and fold_in_slices (per unit); fold and process (the two in one)
    # serve tools and tests. Decoding shows little: a drain's backlog is mostly decoded before the recording starts.
    (
        "batch processing, all of it (BatchProcessor.decode, .fold_in_slices)",
        r"^BatchProcessor\.(decode|fold|fold_in_slices|process)$",
    ),
    ("encoder: batched GRU fold (EncoderRuntime.fold)", r"^EncoderRuntime\.fold$"),
    ("state record decode, cache misses only (decode_state)", r"^decode_state$"),
    ("state record encode (encode_state)", r"^encode_state$"),
    ("fold into window and aggregates (fold_event)", r"^fold_event$"),
    # A pre-loaded backlog of a few MiB arrives in the first poll and is decoded before the first profile, so
    # before a recording that starts there: this row is near 0 in `make bench` (decode costs ~16-20 µs an event).
    ("event decode and validation (decode_event)", r"^decode_event$"),
    ("profile aggregates (profile_aggregates)", r"^profile_aggregates$"),
    ("profile JSON (ProfileUpdated.to_bytes)", r"^ProfileUpdated\.to_bytes$"),
    ("state store reads and writes, changelog staged (StateAccess.load/store)", r"StateAccess\.(load|store)$"),
    ("publishing profiles and changelog in record batches (ProfileWorker._publish)", r"^ProfileWorker\._publish$"),
    ("Kafka client (aiokafka, all threads)", r"^aiokafka/"),
)
"""Named parts of the worker: (label, regular expression over a frame's function name or file path)."""

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def parse_frame(frame: str) -> tuple[str, str]:
    """``function (file:line)`` -> (function, file); a frame of another shape is its own function name."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match.group("function"), match.group("file")


@dataclass(frozen=True)
class Share:
    """A function or part and the share of samples it was in."""

    name: str
    share: float


@dataclass(frozen=True)
class ProfileSummary:
    """Where the worker's samples went."""

    samples: int
    top_self: tuple[Share, ...]
    top_inclusive: tuple[Share, ...]
    parts: tuple[Share, ...]


def analyse(lines: Iterable[str], top: int = 15) -> ProfileSummary:
    """Summarise collapsed stacks: top functions by self and inclusive share, and the named :data:`PARTS`."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    part_counts: Counter[str] = Counter()
    patterns = [(label, re.compile(pattern)) for label, pattern in PARTS]
    total = 0
    for line in lines:
        stack, _, count_text = line.strip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [parse_frame(f) for f in stack.split(";")]
        names = [f"{function} ({file})" if file else function for function, file in frames]
        self_counts[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
        for label, pattern in patterns:
            if any(pattern.search(function) or pattern.search(file) for function, file in frames):
                part_counts[label] += count
    if total == 0:
        return ProfileSummary(0, (), (), ())

    def shares(counter: Counter[str], n: int) -> tuple[Share, ...]:
        return tuple(Share(name, count / total) for name, count in counter.most_common(n))

    return ProfileSummary(
        samples=total,
        top_self=shares(self_counts, top),
        top_inclusive=shares(inclusive, top),
        parts=tuple(Share(label, part_counts[label] / total) for label, _ in PARTS),
    )


def py_spy_path() -> str:
    """The py-spy executable of this interpreter's environment (or on PATH)."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: install the bench extra (pip install -e '.[bench]')")
    return found


@dataclass
class SpyRecording:
    """A running ``py-spy record`` of one process."""

    proc: subprocess.Popen[bytes]
    out_path: Path

    @classmethod
    def start(cls, pid: int, seconds: float, out_path: Path) -> SpyRecording:
        """Record ``pid`` for ``seconds`` (every thread, ``--nonblocking``) into ``out_path``."""
        out_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            py_spy_path(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(SAMPLE_RATE_HZ),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out_path),
        ]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return cls(proc, out_path)

    def running(self) -> bool:
        """True while py-spy records."""
        return self.proc.poll() is None

    def stop(self) -> None:
        """End the recording now; py-spy writes what it has (it takes SIGINT as Ctrl-C)."""
        if self.running():
            self.proc.send_signal(signal.SIGINT)

    def result(self, top: int = 15) -> ProfileSummary:
        """Wait for py-spy and summarise what it recorded."""
        _, stderr = self.proc.communicate(timeout=120)
        if self.proc.returncode != 0 or not self.out_path.exists():
            raise RuntimeError(f"py-spy failed ({self.proc.returncode}): {stderr.decode(errors='replace')[-2000:]}")
        return analyse(self.out_path.read_text().splitlines(), top)
