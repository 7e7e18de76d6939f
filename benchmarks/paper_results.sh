#!/usr/bin/env bash
# Reproduce benchmarks/RESULTS.md: both protocols on the paper's tasks, GFlowNets and baselines, 3 seeds.
# Runs land in ${RUNS:-runs/paper} (large: checkpoints); tables and plots are copied to benchmarks/results/paper/.
# Completed runs are reused, so the script can be interrupted and re-run. JOBS parallel processes (default 2).
set -euo pipefail
RUNS=${RUNS:-runs/paper}
JOBS=${JOBS:-2}
GFN=logit,layer,logit+layer,none
BASE=ppo,sac,a2c,mcmc,sa,random
OUT=benchmarks/results/paper
ms() {  # task rounds methods
  thermogfn bench mode-seeking --task "$1" --rounds "$2" --methods "$3" --seeds 3 --jobs "$JOBS" --out "$RUNS/ms_$1"
}
off() {  # task
  thermogfn bench offline --task "$1" --methods "$GFN" --seeds 3 --jobs "$JOBS" --out "$RUNS/off_$1"
}
ms tfbind8 2000 "$GFN,$BASE"
off tfbind8
off qm9str
ms sehstr 500 "$GFN"
ms rna1 300 "$GFN"
ms qm9str 2000 "$GFN,$BASE"
for d in ms_tfbind8 off_tfbind8 ms_qm9str off_qm9str ms_sehstr ms_rna1; do
  mkdir -p "$OUT/$d"
  cp "$RUNS/$d"/results.md "$RUNS/$d"/results.csv "$RUNS/$d"/*.png "$OUT/$d/"
done
for d in ms_tfbind8 ms_qm9str; do
  python benchmarks/exact_tv.py "$RUNS/$d" --out "$OUT/$d/exact_tv.md"
done

python benchmarks/make_results.py
