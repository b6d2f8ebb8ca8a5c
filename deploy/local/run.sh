#!/usr/bin/env bash
# `make run`: a local broker, the topics, one worker, the reference recommender and demo traffic, then profile
# updates printed as they arrive and, every DEMO_SHOW_EVERY_S seconds, the recommendations for DEMO_USER.
# Ctrl-C (or SIGTERM) stops every process this script started, the broker included.
#
# Variables: DEMO_USERS (500), DEMO_RATE events/s (50), DEMO_USER (user-000000, the busiest demo user),
# DEMO_SHOW_EVERY_S (15), DEMO_RUN_DIR (var/run: the processes' logs), PROFILESTREAM_* settings (see the
# README), and the broker's KAFKA_* variables (deploy/local/README.md).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$REPO_ROOT"
BIN="$REPO_ROOT/.venv/bin"
RUN_DIR="${DEMO_RUN_DIR:-var/run}"  # relative to the repository, where the script runs
mkdir -p "$RUN_DIR"

export PROFILESTREAM_KAFKA_BOOTSTRAP="${PROFILESTREAM_KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
DEMO_USERS="${DEMO_USERS:-500}"
DEMO_RATE="${DEMO_RATE:-50}"
DEMO_USER="${DEMO_USER:-user-000000}"
DEMO_SHOW_EVERY_S="${DEMO_SHOW_EVERY_S:-15}"
RECOMMEND_URL="http://127.0.0.1:${PROFILESTREAM_RECOMMEND_PORT:-8088}"

worker_pid=""
tail_pid=""

stop_all() {
  # Further signals are ignored while stopping: a second Ctrl-C must not leave the broker running.
  trap '' INT TERM
  trap - EXIT
  echo "run.sh: stopping demo traffic, recommender, worker and broker" >&2
  # Every background job, whether its pid variable was set yet or not (a signal can land between `cmd &` and
  # `pid=$!`). A SIGTERM to this script reaches only the script, and a script's background jobs ignore Ctrl-C:
  # each is stopped here.
  local pids pid alive
  pids="$(jobs -p)"
  # shellcheck disable=SC2086 # one word per pid
  [[ -n "$pids" ]] && kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 1 60); do # 30 s for all of them together, then SIGKILL
    alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ -z "$alive" ]] && break
    sleep 0.5
  done
  # shellcheck disable=SC2086
  [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
  # shellcheck disable=SC2086
  wait $pids 2>/dev/null || true
  "$SCRIPT_DIR/kafka.sh" stop || true
  echo "run.sh: stopped" >&2
}
# Ctrl-C reaches the worker and the profile tail too (both handle SIGINT, unlike the script's other jobs),
# sometimes before this script's own trap has run: a job that ended cleanly or by SIGINT while the demo ran was
# stopped by Ctrl-C. Stop everything as the trap does; otherwise return, and the caller reports the failure.
exit_if_interrupted() {
  local status=0
  wait "$1" 2>/dev/null || status=$?
  if ((status == 0 || status == 130)); then
    stop_all
    exit 130
  fi
}
# After a signal the script ends there (128 + the signal's number), not back in the loop below.
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

"$SCRIPT_DIR/kafka.sh" start >/dev/null
"$BIN/profilestream" --cli-log-level warning topics create
echo "run.sh: worker log in $RUN_DIR/worker.log; metrics on http://127.0.0.1:${PROFILESTREAM_METRICS_PORT:-9308}/metrics" >&2
"$BIN/profilestream" worker >"$RUN_DIR/worker.log" 2>&1 &
worker_pid=$!
if [[ -n "${PROFILESTREAM_MODEL_DIR:-}" ]]; then
  # The recommender scores a profile only with its own model's item vectors: publish them (idempotent).
  "$BIN/profilestream" --cli-log-level warning model publish --model "$PROFILESTREAM_MODEL_DIR" >&2
fi
echo "run.sh: recommender log in $RUN_DIR/recommend.log; $RECOMMEND_URL/recommendations/$DEMO_USER?k=5" >&2
"$BIN/profilestream" recommend >"$RUN_DIR/recommend.log" 2>&1 &
"$BIN/profilestream" --cli-log-level warning demo-traffic --users "$DEMO_USERS" --rate "$DEMO_RATE" \
  >"$RUN_DIR/demo-traffic.log" 2>&1 &
echo "run.sh: demo traffic: $DEMO_USERS users, $DEMO_RATE events/s; profile updates follow (Ctrl-C stops everything)" >&2
"$BIN/profilestream" --cli-log-level warning profiles tail &
tail_pid=$!
# Wait on the tail in the background so the INT/TERM trap runs at once; stop when the worker dies.
ticks=0
while kill -0 "$tail_pid" 2>/dev/null; do
  ticks=$((ticks + 1))
  if ((ticks % DEMO_SHOW_EVERY_S == 0)); then
    if shown=$(curl -sf --max-time 2 "$RECOMMEND_URL/recommendations/$DEMO_USER?k=5"); then
      echo "run.sh: recommendations for $DEMO_USER: $shown" >&2
    else
      echo "run.sh: the recommender does not answer yet ($RUN_DIR/recommend.log)" >&2
    fi
  fi
  if ! kill -0 "$worker_pid" 2>/dev/null; then
    exit_if_interrupted "$worker_pid"
    echo "run.sh: the worker exited; last lines of $RUN_DIR/worker.log:" >&2
    tail -n 20 "$RUN_DIR/worker.log" >&2
    exit 1
  fi
  sleep 1
done
exit_if_interrupted "$tail_pid"
echo "run.sh: the profile tail exited (is the broker up? deploy/local/kafka.sh status)" >&2
exit 1
