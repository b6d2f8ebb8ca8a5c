"""A checkout of an earlier commit beside this one, so that its worker can run in the same benchmark run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.procs import REPO_ROOT


def checkout_of(revision: str, workdir: Path) -> Path:
    """A detached git worktree of ``revision`` under ``workdir`` (replacing one left by an earlier run)."""
    path = workdir / "baseline"
    remove_checkout(path)
    done = subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(path), revision],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        # E.g. a shallow clone without that commit: say so rather than run the suite without its comparison.
        raise RuntimeError(
            f"cannot check out {revision} for the baseline worker ({done.stderr.strip()}); "
            "fetch the full history, or run with --no-baseline"
        )
    return path


def remove_checkout(path: Path) -> None:
    """Remove the worktree at ``path`` if there is one."""
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO_ROOT, check=False, capture_output=True)
    subprocess.run(["git", "worktree", "prune"], cwd=REPO_ROOT, check=False, capture_output=True)
