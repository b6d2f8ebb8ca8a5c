"""Reading py-spy's collapsed stacks, and ending a recording early."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.pyspy import SpyRecording, analyse, parse_frame

STACKS = [
    "main (w.py:1);BatchProcessor.process (streams/worker/processor.py:10);decode_state (state/codec.py:5) 30",
    "main (w.py:1);BatchProcessor.process (streams/worker/processor.py:11);"
    "EncoderRuntime.fold (streams/worker/encoder_runtime.py:3) 50",
    "main (w.py:1);send (aiokafka/producer/sender.py:2) 20",
    "not a stack line",
]


def test_frames_split_into_function_and_file() -> None:
    assert parse_frame("decode_state (state/codec.py:123)") == ("decode_state", "state/codec.py")
    assert parse_frame("<module> (streams/cli/main.py:257)") == ("<module>", "streams/cli/main.py")
    assert parse_frame("odd") == ("odd", "")


def test_shares_of_samples() -> None:
    summary = analyse(STACKS)
    assert summary.samples == 100
    assert summary.top_self[0].name == "EncoderRuntime.fold (streams/worker/encoder_runtime.py)"
    assert summary.top_self[0].share == 0.5
    inclusive = {s.name: s.share for s in summary.top_inclusive}
    assert inclusive["main (w.py)"] == 1.0
    assert inclusive["BatchProcessor.process (streams/worker/processor.py)"] == 0.8
    parts = {s.name.split(" (")[0]: s.share for s in summary.parts}
    assert parts["encoder: batched GRU fold"] == 0.5
    assert parts["state record decode, cache misses only"] == 0.3
    assert parts["Kafka client"] == 0.2
    assert parts["profile JSON"] == 0.0


def test_an_empty_profile() -> None:
    assert analyse([]).samples == 0


def test_the_worker_s_batch_processing_counts_decode_and_fold() -> None:
    """The worker calls ``decode`` and ``fold_in_slices``, never ``process``: both count as its batch processing
    (so does ``fold``, which tools and tests call)."""
    summary = analyse(
        [
            "w;main (w.py:1);BatchProcessor.fold_in_slices (streams/worker/processor.py:2) 2",
            "w;main (w.py:1);BatchProcessor.fold (streams/worker/processor.py:2) 1",
            "w;main (w.py:1);BatchProcessor.decode (streams/worker/processor.py:3) 1",
            "w;main (w.py:1);select (selectors.py:4) 4",
        ]
    )
    parts = {s.name.split(" (")[0]: s.share for s in summary.parts}
    assert parts["batch processing, all of it"] == 0.5


def test_stopping_a_recording_keeps_what_was_recorded(tmp_path: Path) -> None:
    """`stop` ends a recording the way Ctrl-C does, and py-spy then writes its samples (a stand-in here that
    behaves like py-spy on SIGINT; `make bench`'s profile section runs the real one)."""
    out, ready = tmp_path / "profile.txt", tmp_path / "ready"
    stand_in = (
        "import signal, sys, time\n"
        "def write(*_):\n"
        f"    open({str(out)!r}, 'w').write('work (w.py:1) 7\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGINT, write)\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )
    recording = SpyRecording(subprocess.Popen([sys.executable, "-c", stand_in]), out)
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recording.running()
    recording.stop()
    summary = recording.result()
    assert summary.samples == 7 and not recording.running()
