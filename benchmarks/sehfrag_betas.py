"""Reward and diversity against beta for the trained GFlowNets of a ``bench mode-seeking --task sehfrag`` folder.

    python benchmarks/sehfrag_betas.py BENCH_DIR [--betas 1,8,16,32,64] [--samples 256] [--out FILE_STEM]

For every GFlowNet run (``runs/<method>-s<seed>``; ``none`` has one beta and is sampled as it is at each beta, so its
rows show what a sampler without temperature input gives), ``--samples`` on-policy molecules per beta: mean reward
(proxy / 8), the mean of the top 10%, the share at or above the mode threshold (0.9), the number of modes among them
(QGFN's rule: Tanimoto < 0.7 to earlier modes), distinct molecules and Tanimoto diversity. Mean ± std over seeds in
``FILE_STEM.md``, all values in ``FILE_STEM.json``, and reward / diversity against beta in ``FILE_STEM.png``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from thermogfn.bench.report import summary_table
from thermogfn.evaluate import draw_samples, load_run
from thermogfn.rundir import RunDir

METRICS = ("mean_reward", "top10pct_reward", "share_above_0.9", "modes", "distinct", "diversity")


def sample_metrics(trainer, beta: float, n: int) -> dict[str, float]:
    x, raw = draw_samples(trainer, beta, n, seed=0)
    task = trainer.task
    top = raw.sort(descending=True).values[: max(1, n // 10)]
    distinct = torch.unique(x, dim=0)
    return {"mean_reward": float(raw.mean()), "top10pct_reward": float(top.mean()),
            "share_above_0.9": float((raw >= 0.9).double().mean()),
            "modes": task.mode_rule().count_in(x, None, raw), "distinct": int(distinct.shape[0]),
            "diversity": task.diversity(distinct)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--betas", default="1,8,16,32,64")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    betas = [float(b) for b in args.betas.split(",")]
    values: dict[str, dict[float, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    rows = []
    for run in sorted((args.bench_dir / "runs").iterdir()):
        if RunDir(run).load_config().method != "gfn":
            continue
        trainer = load_run(run).trainer
        method = run.name.rsplit("-s", 1)[0]
        for beta in betas:
            metrics = sample_metrics(trainer, beta, args.samples)
            rows.append({"method": method, "beta": beta, **metrics})
            for key, value in metrics.items():
                values[method][beta][key].append(value)
        print(f"{run.name} done", flush=True)
    stem = Path(args.out or args.bench_dir / "betas")
    text = (f"# sehfrag: samples per beta ({args.samples} per run and beta)\n\n"
            f"`python benchmarks/sehfrag_betas.py {args.bench_dir} --betas {args.betas} --samples {args.samples}`\n\n"
            + summary_table(rows, "beta", list(METRICS)) + "\n")
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    _plot(values, betas, stem.with_suffix(".png"))
    print(text)


def _plot(values, betas: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ("mean_reward", "top10pct_reward", "diversity"),
                              ("mean reward (proxy / 8)", "top-10% reward", "Tanimoto diversity"), strict=True):
        for method, per_beta in values.items():
            mean = [float(torch.tensor(per_beta[b][key]).mean()) for b in betas]
            std = [float(torch.tensor(per_beta[b][key]).std()) if len(per_beta[b][key]) > 1 else 0.0 for b in betas]
            ax.errorbar(betas, mean, yerr=std, marker="o", capsize=3, label=method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("beta")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
