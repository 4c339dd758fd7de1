#!/usr/bin/env bash
# Commit what the background Table 3 run has finished: its fold files, config, costs and the
# rewritten results files (benchmarks/runs/table3-paper/, benchmarks/results/4qaed_*_paper.*),
# and the training state of the fold in progress (<method>/folds/<fold>.partial.<n>.pt, written
# after every epoch; a rerun from a fresh clone resumes that fold mid-training, bit for bit).
# A state over TABLE3_PARTIAL_MAX_MB (default 20; the baseline CNN's is 2.5 MB) is left out with
# a note, as are all of them with TABLE3_PARTIAL_MAX_MB=0. A fold file removes its states, and the
# next commit records the removal. Only those paths are committed (anything else staged stays
# staged). Run it from any directory of the checkout, by hand or in a loop:
#   while sleep 1200; do benchmarks/table3_commit.sh; done
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
run=${1:-benchmarks/runs/table3-paper}
max_mb=${TABLE3_PARTIAL_MAX_MB:-20}
paths=("$run")
for f in benchmarks/results/4qaed_*_paper.csv benchmarks/results/4qaed_*_paper.md; do
  if [[ -e $f ]]; then paths+=("$f"); fi
done
# Training states too large to commit: excluded from this commit (and kept on disk).
excludes=()
while IFS= read -r -d '' state; do
  size_mb=$(( $(stat -c %s "$state") / 1000000 ))
  if (( max_mb == 0 || size_mb > max_mb )); then
    echo "table3_commit: not committing $state (${size_mb} MB > ${max_mb} MB)"
    excludes+=(":(exclude)$state")
  fi
done < <(find "$run" -name '*.partial.*.pt' ! -name '.*' -print0 2>/dev/null)
git add -A -- "${paths[@]}" "${excludes[@]}"
if git diff --cached --quiet -- "${paths[@]}"; then
  echo "table3_commit: nothing new"
  exit 0
fi
summary=""
for d in "$run"/*/folds; do
  if [[ -d $d ]]; then
    finished=$(find "$d" -maxdepth 1 -name 'r*_f*.json' ! -name '.*' | wc -l)
    partial=$(find "$d" -maxdepth 1 -name 'r*_f*.partial.*.pt' ! -name '.*' | wc -l)
    summary+="$(basename "$(dirname "$d")") $finished/10"
    if (( partial > 0 )); then summary+=" (+1 in progress)"; fi
    summary+=", "
  fi
done
git commit -q -m "Table 3 paper-regime run: folds finished: $(s=${summary:-none yet, }; echo "${s%, }")" \
  -- "${paths[@]}"
git log --oneline -1
