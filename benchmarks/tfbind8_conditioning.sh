#!/usr/bin/env bash
# Issue 2's quality check: logit vs layer (and none) on TFBind8, beta ~ U[1,3], 2000 rounds, same seed.
# Writes runs to ${RUNS:-runs}/tfbind8-* and the evaluation JSON to benchmarks/results/tfbind8_conditioning.jsonl
set -euo pipefail
RUNS=${RUNS:-runs}
SEED=${SEED:-0}
LR=${LR:-}  # empty: the task's default (the paper's 1e-4)
mkdir -p benchmarks/results
out=benchmarks/results/tfbind8_conditioning${LR:+_lr$LR}.jsonl
: > "$out"
for cond in logit layer none; do
  prior=uniform:1:3
  [ "$cond" = none ] && prior=constant:1
  thermogfn train --task tfbind8 --conditioning "$cond" --beta-train "$prior" --steps 2000 --seed "$SEED" \
    ${LR:+--lr "$LR"} --out "$RUNS/tfbind8-$cond-s$SEED${LR:+-lr$LR}" --overwrite --no-progress
  thermogfn eval "$RUNS/tfbind8-$cond-s$SEED${LR:+-lr$LR}" --betas 1,2,3,10,30 --samples 2048 --json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); d['conditioning']='$cond'; print(json.dumps(d))" >> "$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
betas = list(rows[0]["betas"])
print("| conditioning | modes (training) | " + " | ".join(f"TV@{b}" for b in betas)
      + " | " + " | ".join(f"logZ err@{b}" for b in betas) + " |")
print("|---" * (2 + 2 * len(betas)) + "|")
for r in rows:
    tvs = " | ".join(f"{v['tv']:.3f}" for v in r["betas"].values())
    errs = " | ".join(f"{v['log_z_error']:.2f}" for v in r["betas"].values())
    print(f"| {r['conditioning']} | {r['modes_found_training']}/{r['n_modes']} | {tvs} | {errs} |")
PY
