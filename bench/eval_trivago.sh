#!/usr/bin/env bash
# The evaluation table of docs/evaluation.md in one command: import the trivago slice, train the encoder on the
# first 80 % of its events (by time), evaluate it against popularity and item-kNN on the last 20 %, export the
# item vectors. Everything it writes goes under var/trivago/ (ignored by git).
#
# Usage: bench/eval_trivago.sh [SOURCE_DIR]
#   SOURCE_DIR  folder holding events.csv.gz (default: ../shared/data/trivago_rsc19_100k beside the repository)
#   SEED=n      training seed (default 0)
#   TRAIN_FLAGS extra flags for `profilestream train` (e.g. --no-recency-memory for the plain GRU)
#   MODEL=dir   checkpoint directory (default var/trivago/model)
set -euo pipefail
cd "$(dirname "$0")/.."
cli=.venv/bin/profilestream
out=var/trivago
seed=${SEED:-0}
model=${MODEL:-$out/model}
mkdir -p "$out"
started=$(date +%s)

$cli data import trivago ${1:+--source "$1"} --out "$out/events.jsonl"
# shellcheck disable=SC2086  # TRAIN_FLAGS is a list of flags
$cli train --events "$out/events.jsonl" --out "$model" --seed "$seed" --test-fraction 0.2 --no-progress ${TRAIN_FLAGS:-}
$cli evaluate --events "$out/events.jsonl" --model "$model" --json-out "$model.report.json"
$cli model export-items --model "$model" --out "$model.item-vectors.jsonl"

echo "total wall time (import + train + evaluate + export): $(($(date +%s) - started)) s"
