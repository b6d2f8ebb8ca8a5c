#!/usr/bin/env bash
# GRU4Rec, official PyTorch code, beside the encoder on the standard protocol's files (docs/evaluation.md).
# Not part of `make test`. Never copies GRU4Rec's code into this repository: it runs a checkout of its public
# repository (hidasib/GRU4Rec_PyTorch_Official) in a scratch environment under var/gru4rec/.
#
# Usage: bench/gru4rec/run.sh CHECKOUT SHOP [RUNS]
#   CHECKOUT  a clone of the official repository (git clone it where GitHub is reachable)
#   SHOP      folder under var/ holding standard/train.tsv and standard/test.tsv, written by
#             `profilestream evaluate --protocol standard ... --export-tsv var/SHOP/standard`
#   RUNS      runs per parameter file (default 3); GRU4Rec is not seeded, runs differ by initialisation
#   PARAMFILES  space-separated parameter files of the checkout, relative to it
#             (default: its published best cross-entropy settings for YOOCHOOSE and for the RSC15 100 unit model)
#   THREADS   torch threads of each GRU4Rec run (default 2)
#   PYTHON    interpreter with torch, numpy and pandas (default: a scratch venv var/gru4rec/venv, made with pip)
set -euo pipefail
cd "$(dirname "$0")/../.."
checkout=$(cd "${1:?checkout of GRU4Rec_PyTorch_Official}" && pwd)
shop=${2:?shop folder under var/}
runs=${3:-3}
data=var/$shop/standard
out=var/gru4rec/$shop
paramfiles=${PARAMFILES:-paramfiles/yoochoose_xe_shared_best.py paramfiles/rsc15_xe_shared_100_best.py}
mkdir -p "$out"
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x var/gru4rec/venv/bin/python ]; then
    python3 -m venv var/gru4rec/venv
    # Versions of its time: with pandas 3 its popularity vector fails to convert, with torch 2.15 its
    # compatibility-mode weight reset fails on a float64 tensor (both seen here).
    var/gru4rec/venv/bin/pip install --quiet "torch<2.4" "numpy<2" "pandas<2.3" joblib
  fi
  PYTHON=$(pwd)/var/gru4rec/venv/bin/python
fi
# run.py evaluates in batches of 512 sessions and fails on a test file with fewer (trivago's standard split has
# 56): then the model is saved and evaluated by bench/gru4rec/evaluate.py with the same official evaluation code.
test_sessions=$(tail -n +2 "$data/test.tsv" | cut -f1 | sort -u | wc -l)
for paramfile in $paramfiles; do
  name=$(basename "$paramfile" .py)
  for run in $(seq 1 "$runs"); do
    log=$out/$name.run$run.log
    echo "GRU4Rec $name run $run -> $log"
    # -m: the cut-offs of our tables; -d cpu: this machine has no GPU.
    if [ "$test_sessions" -ge 512 ]; then
      (cd "$checkout" && OMP_NUM_THREADS=${THREADS:-2} nice -n 10 "$PYTHON" run.py "$OLDPWD/$data/train.tsv" \
        -t "$OLDPWD/$data/test.tsv" -pf "$paramfile" -m 5 10 20 -d cpu) >"$log" 2>&1
    else
      model=$(pwd)/$out/$name.run$run.pt
      (cd "$checkout" && OMP_NUM_THREADS=${THREADS:-2} nice -n 10 "$PYTHON" run.py "$OLDPWD/$data/train.tsv" \
        -pf "$paramfile" -s "$model" -d cpu) >"$log" 2>&1
      OMP_NUM_THREADS=${THREADS:-2} "$PYTHON" bench/gru4rec/evaluate.py "$checkout" "$model" "$data/test.tsv" 5 10 20 >>"$log" 2>&1
      rm -f "$model"
    fi
  done
done
# The summary needs only the standard library: any interpreter that can import this repository's bench package.
"$PYTHON" -m bench.gru4rec.summary "$out"/*.log
