#!/usr/bin/env bash
# The two learning curves on a real LM (SmolLM2-135M-Instruct against MiniLM and LoRA on SmolLM2), one after the
# other: each is about an hour on 2 CPU cores (SST-2 48 min, AG News 72 min here), and two at once only slow each
# other down (the cores are shared).
# Run, kill and run again: a curve that has a run folder is continued (--resume keeps finished trials), a
# finished one is only continued to its end (nothing re-runs). Results: benchmarks/results/curves_{sst2,ag_news}_lm.json.
#   nohup benchmarks/curves_lm.sh > runs/curves_lm.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
for task in ${TASKS:-sst2 ag_news}; do
  folder="runs/curves_${task}_lm"
  if [[ -f "$folder/run.sqlite" ]]; then
    how=(--resume "$folder")
  else
    how=(--out "$folder")
  fi
  echo "[curves_lm] $task: tailor curve benchmarks/curves_${task}_lm.yaml ${how[*]} ($(date -u +%FT%TZ))"
  rc=0
  .venv/bin/tailor curve "benchmarks/curves_${task}_lm.yaml" "${how[@]}" || rc=$?
  # 3: the curve finished, some trials failed (they are in its report); anything else stops here
  if [[ $rc -ne 0 && $rc -ne 3 ]]; then echo "[curves_lm] $task: exit $rc" >&2; exit "$rc"; fi
  echo "[curves_lm] $task: finished, exit $rc ($(date -u +%FT%TZ))"
done
