#!/usr/bin/env bash
# Table 3's deep rows at the paper's training regime on one CUDA GPU: 10 folds x 1 repeat.
#
#   benchmarks/gpu_table3.sh DATA_ROOT [--quick] [--songs N] [--folds K] [--methods a,b]
#
# 1. one process computes every input (16 kHz log-mels, chunks, augmented copies, features)
#    into the feature cache with all CPU cores and persists the folds;
# 2. one process per method then trains on the GPU at the same time, each running
#    FOLD_WORKERS (default 5) folds at once in worker processes (the models are small: one fold
#    alone leaves most of an H100 idle), each method with its own log;
# 3. each writes benchmarks/results/4qaed_<method>_paper_gpu.{csv,md} and its fold files under
#    benchmarks/runs/table3-paper-gpu/ (resumable: rerun the same command after an interruption).
# --quick runs every method's smoke settings (2-4 epochs) and writes *_quick_gpu files instead;
# With --songs 40 --folds 2 --serial (one method at a time, for a shared CPU) it tests the
# script end to end on a CPU in a few minutes.
set -euo pipefail
root=${1:?usage: benchmarks/gpu_table3.sh DATA_ROOT [--quick] [--songs N] [--folds K]}
shift
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
methods="cnn,cnn+rg,cnn+tfm,cnn+sb,cnn+deepsmote,hybrid,shortchunk,cnn-gru,crnn,samplecnn"
extra=()
serial=0
suffix=paper_gpu
out="$here/runs/table3-paper-gpu"
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) extra+=(--quick); suffix=quick_gpu; out="$(cd "$here/.." && pwd)/runs/table3-quick-gpu"; shift ;;
    --methods) methods=$2; shift 2 ;;
    --serial) serial=1; shift ;;
    --songs|--folds|--config) extra+=("$1" "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
jobs=$(nproc)
"$python" -c 'import torch; print("cuda:", torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(CPU run)")'
start=$(date +%s)
"$python" "$here/table3_paper.py" --root "$root" --methods "$methods" --out "$out" \
  --suffix "$suffix" --jobs "$jobs" --prepare "${extra[@]}" 2>&1 | tail -n 3
echo "inputs ready after $(( $(date +%s) - start )) s"
# CPU threads per training process: the cores shared out, at least 1.
n=$(tr ',' '\n' <<<"$methods" | wc -l)
workers=$(( serial ? 1 : ${FOLD_WORKERS:-5} ))
threads=$(( jobs / (n * workers) > 0 ? jobs / (n * workers) : 1 ))
pids=()
status=0
for method in ${methods//,/ }; do
  log="$out/${method}.log"
  "$python" "$here/table3_paper.py" --root "$root" --methods "$method" --out "$out" \
    --suffix "$suffix" --threads "$threads" --workers "$workers" "${extra[@]}" >"$log" 2>&1 &
  pids+=($!)
  if (( serial )); then wait "${pids[-1]}" || status=1; pids=(); fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "all methods finished after $(( $(date +%s) - start )) s (exit status $status)"
for method in ${methods//,/ }; do tail -n 1 "$out/${method}.log"; done
exit $status
