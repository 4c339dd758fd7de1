#!/usr/bin/env bash
# Commit what the background Table 3 run has finished: its fold files, config, costs and the
# rewritten results files (benchmarks/runs/table3-paper/, benchmarks/results/4qaed_*_paper.*).
# Only those paths are committed (anything else staged stays staged). Run it from any directory
# of the checkout, by hand or in a loop:  while sleep 1200; do benchmarks/table3_commit.sh; done
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
run=${1:-benchmarks/runs/table3-paper}
paths=("$run")
for f in benchmarks/results/4qaed_*_paper.csv benchmarks/results/4qaed_*_paper.md; do
  if [[ -e $f ]]; then paths+=("$f"); fi
done
git add -- "${paths[@]}"
if git diff --cached --quiet -- "${paths[@]}"; then
  echo "table3_commit: nothing new"
  exit 0
fi
summary=""
for d in "$run"/*/folds; do
  if [[ -d $d ]]; then summary+="$(basename "$(dirname "$d")") $(ls "$d" | wc -l)/10, "; fi
done
git commit -q -m "Table 3 paper-regime run: folds finished: $(s=${summary:-none yet, }; echo "${s%, }")" \
  -- "${paths[@]}"
git log --oneline -1
