"""deploy/local/run.sh, the README's first command: the whole demo comes up, shows profiles and recommendations, and
a Ctrl-C or a SIGTERM stops every process it started, the broker included.

It runs its own broker on ports the kernel hands out, with its state, logs and model in a temporary directory, so it
never meets the broker of `make run` or the session fixture's one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import free_ports

pytestmark = pytest.mark.kafka

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_SH = REPO_ROOT / "deploy" / "local" / "run.sh"
BIN = Path(sys.executable).parent
UP_TIMEOUT_S = 150  # broker start, topics, worker start-up and the first recommendations on a loaded machine
STOP_TIMEOUT_S = 120  # run.sh gives its processes 30 s together, then the broker its own 30 s


class _Lines:
    """Lines of a pipe, collected by a thread as they come."""

    def __init__(self, pipe: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def finish(self, timeout_s: float) -> None:
        """Wait until the pipe is read to its end (every process writing to it has exited)."""
        self._thread.join(timeout_s)


def _profile_lines(lines: list[str]) -> list[str]:
    """The profile updates among run.sh's output lines (the topic step's report comes first)."""
    return [line for line in lines if line.startswith("{")]


def _worker_log_tail(env: dict[str, str], lines: int = 15) -> list[str]:
    """The last lines of the worker's log run.sh wrote (empty if there is none)."""
    log = Path(env["DEMO_RUN_DIR"]) / "worker.log"
    return log.read_text(errors="replace").splitlines()[-lines:] if log.is_file() else []


def _session_processes(session_id: int) -> list[int]:
    """Process ids of the live (not zombie) processes in session ``session_id``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _command_line(pid: int) -> str:
    """The first characters of a process's command line ("" once it has exited)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120].decode(errors="replace")
    except OSError:
        return ""


def _model(tmp_path: Path) -> Path:
    """A small trained model, as `make run`'s demo model is made (fewer events, one epoch)."""
    events, model = tmp_path / "events.jsonl", tmp_path / "model"
    cli = str(BIN / "profilestream")
    for args in (
        ["demo-events", "--users", "200", "--count", "4000", "--seed", "7", "--out", str(events)],
        [
            "train",
            "--test-fraction",
            "0",
            "--epochs",
            "1",
            "--no-progress",
            "--events",
            str(events),
            "--out",
            str(model),
        ],
    ):
        subprocess.run([cli, *args], check=True, capture_output=True, timeout=300)
    return model


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """run.sh's environment: its own ports, broker data, state, logs and model; the broker stopped afterwards."""
    kafka_port, controller_port, metrics_port, web_port, recommend_port = free_ports(5)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "PROFILESTREAM_"))}
    env |= {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
        "PROFILESTREAM_STATE_DIR": str(tmp_path / "state"),
        "PROFILESTREAM_METRICS_PORT": str(metrics_port),
        "PROFILESTREAM_WEB_PORT": str(web_port),
        "PROFILESTREAM_RECOMMEND_PORT": str(recommend_port),
        "PROFILESTREAM_MODEL_DIR": str(_model(tmp_path)),
        "DEMO_RUN_DIR": str(tmp_path / "run"),
        "DEMO_USERS": "50",
        "DEMO_RATE": "100",
        "DEMO_SHOW_EVERY_S": "2",
    }
    yield env
    subprocess.run(
        ["bash", str(REPO_ROOT / "deploy" / "local" / "kafka.sh"), "stop"], env=env, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "stop",
    ["ctrl-c", "sigterm"],
    ids=["ctrl-c to the terminal's group", "sigterm to the script alone"],
)
def test_run_sh_shows_profiles_and_recommendations_and_a_signal_stops_everything(
    demo_env: dict[str, str], stop: str
) -> None:
    proc = subprocess.Popen(
        ["bash", str(RUN_SH)],
        env=demo_env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: every process it starts can be found, and killed on failure
    )
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            shown = [line for line in err.lines if "recommendations for user-000000: {" in line]
            if len(_profile_lines(out.lines)) >= 20 and any('"source":"profile"' in line for line in shown):
                break
            time.sleep(1)
        assert proc.poll() is None, "run.sh exited early:\n" + "\n".join(err.lines[-30:])
        profiles = [json.loads(line) for line in _profile_lines(out.lines)]
        assert len(profiles) >= 20, err.lines[-30:]  # the loop above may have ended at its deadline
        assert all(p["schema"] == 1 and p["user_id"].startswith("user-") for p in profiles), profiles[:2]
        marker = "recommendations for user-000000: "
        answers = [line.split(marker, 1)[1] for line in err.lines if marker + "{" in line]
        assert any(json.loads(a)["source"] == "profile" and json.loads(a)["items"] for a in answers), err.lines[-30:]

        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: every process of the group gets it
            expected = 128 + signal.SIGINT
        else:
            proc.send_signal(signal.SIGTERM)  # a supervisor's stop: only run.sh gets it, and must stop the rest
            expected = 128 + signal.SIGTERM
        code = proc.wait(timeout=STOP_TIMEOUT_S)
        # On a wrong code, what run.sh said last (which of its exits it took) and the worker's log tail.
        if code != expected:
            # In full (an assertion's message is cut short): which of its exits run.sh took, and the worker's end.
            said = "\n".join(err.lines[-15:])
            worker = "\n".join(_worker_log_tail(demo_env))
            pytest.fail(f"run.sh exited {code}, not {expected}\n--- run.sh:\n{said}\n--- worker.log:\n{worker}")
        err.finish(timeout_s=10)  # its last lines may still be in the pipe when it exits
        assert "run.sh: stopped" in err.lines, err.lines[-10:]
        deadline = time.monotonic() + 10
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {pid: _command_line(pid) for pid in _session_processes(proc.pid)}
        assert not left, f"processes left running after run.sh stopped: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
