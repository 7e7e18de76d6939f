#!/usr/bin/env bash
# Issue 2's quality check: logit vs layer (and none) on TFBind8, beta ~ U[1,3], 2000 rounds, same seed.
# Writes runs to ${RUNS:-runs}/tfbind8-* and the evaluation JSON to benchmarks/results/tfbind8_conditioning.jsonl
set -euo pipefail
RUNS=${RUNS:-runs}
SEED=${SEED:-0}
mkdir -p benchmarks/results
out=benchmarks/results/tfbind8_conditioning.jsonl
: > "$out"
for cond in logit layer none; do
  prior=uniform:1:3
  [ "$cond" = none ] && prior=constant:1
  thermogfn train --task tfbind8 --conditioning "$cond" --beta-train "$prior" --steps 2000 --seed "$SEED" \
    --out "$RUNS/tfbind8-$cond-s$SEED" --overwrite --no-progress
  thermogfn eval "$RUNS/tfbind8-$cond-s$SEED" --betas 1,2,3,10,30 --samples 2048 --json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); d['conditioning']='$cond'; print(json.dumps(d))" >> "$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| conditioning | modes (training) | " + " | ".join(f"TV@{b}" for b in rows[0]["betas"]) + " |")
print("|---" * (2 + len(rows[0]["betas"])) + "|")
for r in rows:
    tvs = " | ".join(f"{v['tv']:.3f}" for v in r["betas"].values())
    print(f"| {r['conditioning']} | {r['modes_found_training']}/{r['n_modes']} | {tvs} |")
PY
