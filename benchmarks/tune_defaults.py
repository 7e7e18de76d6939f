"""Tune the TaskDefaults of the tasks outside the paper (hypergrid, custom) with the exact evaluation.

Protocol: logit conditioning, TB, beta_train uniform:1:3, batch 32 on-policy + 32 replayed trajectories per round,
one torch thread. Each run trains up to a rounds budget and is evaluated exactly (``exact.exact_metrics``, total
variation against R^beta / Z(beta) at beta = 1, 2, 3) at a few checkpoints along the way, so one run gives the
whole TV-vs-rounds curve; the seconds reported are training wall-clock only (evaluation excluded).

Tasks, grouped by the task class whose defaults they tune:

* hypergrid: ``HypergridTask(2, 8)`` (64 points) and ``HypergridTask(4, 8)`` (4,096 points, the default size);
* custom: two ``CustomTask``s over ACGT, length 5 (1,024 sequences): ``gc`` (smooth, 1 + GC count) and
  ``peaks`` (rugged: 4 random peaks decaying with Hamming distance over a random floor).

Search (seed 0; sampled, not the full grid): stage 1 is lr in {1e-3, 3e-3} x hidden in {64, 128, 256} at
eps = 0.05 (hypergrid skips lr 3e-3 with hidden 256, see ``STAGE1``); stage 2 takes the best (lr, hidden) of the
group and tries eps in {0.0, 0.1}. A setting's score is the mean TV over beta 1-3 and over the group's two tasks
at its last checkpoint within the time budget (60 s of training on hypergrid 4x8, 20 s on each custom task;
hypergrid 2x8 gets hypergrid's rounds and is not budgeted). ``rounds`` is then the first in-budget checkpoint
whose seed-mean score is within 10 % (+0.005) of the best in-budget checkpoint. The chosen setting is rerun with
seeds 1 and 2. Seconds are wall-clock on a shared machine; the budget test takes the fastest seed's run.

Usage: ``python benchmarks/tune_defaults.py`` (about 35 minutes on 2 shared cores); results are cached in
``benchmarks/results/tune_defaults.json`` (rerunning skips finished runs; ``--fresh`` starts over) and the table is
written to ``benchmarks/results/tune_defaults.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.exact import exact_metrics, target_distribution
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.tasks import Task
from thermogfn.tasks.custom import CustomTask
from thermogfn.tasks.hypergrid import HypergridTask

RESULTS = Path(__file__).parent / "results"
BETAS = (1.0, 2.0, 3.0)
ALPHABET, LENGTH = "ACGT", 5

# group -> evaluation checkpoints (the last is the largest rounds considered)
CHECKPOINTS = {"hypergrid": (250, 500, 1000, 1500, 2000, 3000), "custom": (100, 250, 500, 1000, 1500)}
# training seconds allowed; hypergrid's defaults target the default size 4x8 (2x8 gets the same rounds, reported)
TIME_BUDGET = {"hg4x8": 60.0, "gc": 20.0, "peaks": 20.0}
GROUPS = {"hypergrid": ("hg2x8", "hg4x8"), "custom": ("gc", "peaks")}
STAGE1 = {g: [(lr, hidden, 0.05) for lr in (1e-3, 3e-3) for hidden in (64, 128, 256)] for g in GROUPS}
# hidden 256 costs ~2x hidden 128 per round: on hypergrid 4x8 it reached 1000 rounds only after 104 s at lr 1e-3
# (a loaded machine), so it cannot fit the 60 s budget; its lr 3e-3 run is skipped to save time
STAGE1["hypergrid"].remove((3e-3, 256, 0.05))
STAGE2_EPS = (0.0, 0.1)


def gc_reward(strings: list[str]) -> list[float]:
    """Smooth: 1 + number of G/C."""
    return [1.0 + s.count("G") + s.count("C") for s in strings]


def make_peaks_reward(seed: int = 0, n_peaks: int = 4):
    """Rugged: ``r(x) = u(x) + sum_k h_k * 0.3**hamming(x, p_k)`` with a random floor u in [0.05, 0.25]
    per sequence, random peaks p_k and heights h_k in [2, 5] (all from ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    peaks = ["".join(ALPHABET[i] for i in torch.randint(4, (LENGTH,), generator=g).tolist())
             for _ in range(n_peaks)]
    heights = (2.0 + 3.0 * torch.rand(n_peaks, generator=g, dtype=torch.float64)).tolist()
    floor = (0.05 + 0.2 * torch.rand(4**LENGTH, generator=g, dtype=torch.float64)).tolist()
    weights = [4 ** (LENGTH - 1 - i) for i in range(LENGTH)]

    def peaks_reward(strings: list[str]) -> list[float]:
        out = []
        for s in strings:
            idx = sum(ALPHABET.index(c) * w for c, w in zip(s, weights, strict=True))
            r = floor[idx]
            for p, h in zip(peaks, heights, strict=True):
                r += h * 0.3 ** sum(a != b for a, b in zip(s, p, strict=True))
            out.append(r)
        return out

    return peaks_reward


def make_tasks() -> dict[str, Task]:
    return {
        "hg2x8": HypergridTask(2, 8),
        "hg4x8": HypergridTask(4, 8),
        "gc": CustomTask(gc_reward, ALPHABET, LENGTH, name="gc"),
        "peaks": CustomTask(make_peaks_reward(0), ALPHABET, LENGTH, name="peaks"),
    }


def uniform_tv(task: Task, beta: float) -> float:
    q, _ = target_distribution(task, beta)
    return 0.5 * float((q - 1.0 / task.n_objects).abs().sum())


def run_one(task: Task, lr: float, hidden: int, eps: float, seed: int, checkpoints: tuple[int, ...]) -> dict:
    cfg = RunConfig(task=task.name, objective="tb", beta_train="uniform:1:3", batch_size=32, replay_batch=32,
                    lr=lr, eps=eps, steps=checkpoints[-1], seed=seed,
                    model=ModelConfig(conditioning="logit", hidden=hidden))
    trainer = GFlowNetTrainer(cfg, task)
    curve = []
    seconds = 0.0
    for ckpt in checkpoints:
        t0 = time.perf_counter()
        while trainer.step < ckpt:
            trainer.train_round()
        seconds += time.perf_counter() - t0
        tv = [exact_metrics(trainer.model, task, b)["tv"] for b in BETAS]
        curve.append({"rounds": ckpt, "seconds": round(seconds, 2), "tv": [round(v, 4) for v in tv],
                      "tv_mean": round(statistics.fmean(tv), 4)})
    return {"lr": lr, "hidden": hidden, "eps": eps, "seed": seed, "skipped": trainer.skipped, "curve": curve}


def key(task: str, lr: float, hidden: int, eps: float, seed: int) -> str:
    return f"{task}|lr={lr:g}|hidden={hidden}|eps={eps:g}|seed={seed}"


class Store:
    def __init__(self, path: Path, fresh: bool):
        self.path = path
        self.data: dict[str, Any] = {} if fresh or not path.exists() else json.loads(path.read_text())
        self.data.setdefault("runs", {})

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1, sort_keys=True))


def ensure(store: Store, tasks: dict[str, Task], group: str, setting: tuple[float, int, float], seed: int) -> None:
    lr, hidden, eps = setting
    for name in GROUPS[group]:
        k = key(name, lr, hidden, eps, seed)
        if k in store.data["runs"]:
            continue
        t0 = time.perf_counter()
        res = run_one(tasks[name], lr, hidden, eps, seed, CHECKPOINTS[group])
        store.data["runs"][k] = res
        store.save()
        last = res["curve"][-1]
        print(f"{k}: TV(1,2,3) at {last['rounds']} rounds = {last['tv']} ({last['seconds']} s train, "
              f"{time.perf_counter() - t0:.0f} s total)", flush=True)


def fits(store: Store, group: str, setting: tuple[float, int, float], seeds: tuple[int, ...], i: int) -> bool:
    """Whether checkpoint ``i`` is within the time budget of every budgeted task of the group (the fastest of
    the seeds' runs, as ``timeit`` takes the minimum: the machine is shared, and load only adds time)."""
    lr, hidden, eps = setting
    return all(min(store.data["runs"][key(n, lr, hidden, eps, s)]["curve"][i]["seconds"] for s in seeds)
               <= TIME_BUDGET.get(n, float("inf")) for n in GROUPS[group])


def budget_score(store: Store, group: str, setting: tuple[float, int, float]) -> tuple[float, int]:
    """Seed-0 group mean TV at the last checkpoint within the time budget (the first one if none is)."""
    ok = [i for i in range(len(CHECKPOINTS[group])) if fits(store, group, setting, (0,), i)]
    i = ok[-1] if ok else 0
    return group_curve(store, group, setting, 0)[i], CHECKPOINTS[group][i]


def group_curve(store: Store, group: str, setting: tuple[float, int, float], seed: int) -> list[float]:
    """Mean TV over betas and the group's tasks, per checkpoint."""
    lr, hidden, eps = setting
    curves = [store.data["runs"][key(n, lr, hidden, eps, seed)]["curve"] for n in GROUPS[group]]
    return [statistics.fmean(c[i]["tv_mean"] for c in curves) for i in range(len(CHECKPOINTS[group]))]


def pick_rounds(store: Store, group: str, setting: tuple[float, int, float], seeds: tuple[int, ...]) -> int:
    """First checkpoint within the time budget whose seed-mean score is within 10 % (+0.005) of the best
    checkpoint within the budget."""
    score = [statistics.fmean(vals) for vals in zip(*(group_curve(store, group, setting, s) for s in seeds),
                                                    strict=True)]
    ok = [i for i in range(len(score)) if fits(store, group, setting, seeds, i)] or [0]
    best = min(score[i] for i in ok)
    return next(CHECKPOINTS[group][i] for i in ok if score[i] <= 1.1 * best + 0.005)


def tune(store: Store, tasks: dict[str, Task], group: str) -> dict[str, Any]:
    for setting in STAGE1[group]:
        ensure(store, tasks, group, setting, 0)
    final = {s: budget_score(store, group, s) for s in STAGE1[group]}
    lr, hidden, _ = min(final, key=lambda s: final[s][0])
    for eps in STAGE2_EPS:
        ensure(store, tasks, group, (lr, hidden, eps), 0)
        final[(lr, hidden, eps)] = budget_score(store, group, (lr, hidden, eps))
    chosen = min(final, key=lambda s: final[s][0])
    for seed in (1, 2):
        ensure(store, tasks, group, chosen, seed)
    rounds = pick_rounds(store, group, chosen, (0, 1, 2))
    return {"lr": chosen[0], "hidden": chosen[1], "eps": chosen[2], "rounds": rounds,
            "tried": [[*s, *final[s]] for s in final]}


def fmt(v: float) -> str:
    return f"{v:.3f}"


def write_markdown(store: Store, tasks: dict[str, Task], chosen: dict[str, dict], command: str) -> str:
    lines = ["# Tuned defaults for hypergrid and custom tasks", "",
             f"Command: `{command}`. Date {datetime.date.today().isoformat()}, torch {torch.__version__}, "
             f"Python {platform.python_version()}, 1 torch thread, 2 CPU cores shared with other jobs "
             "(seconds are training wall-clock, exact evaluation excluded, and carry the noise of a shared "
             "machine).", "",
             "Protocol: logit conditioning, TB, beta_train uniform:1:3, batch 32 on-policy + 32 replay per round, "
             "exact total variation (TV) between the model's terminal distribution and R^beta/Z(beta) at "
             "beta = 1, 2, 3. Tasks: hypergrid 2x8 (64 points), hypergrid 4x8 (4,096 points, the default size); "
             "custom ACGT length 5 (1,024 sequences): `gc` = 1 + GC count (smooth), `peaks` = 4 random peaks "
             "h_k 0.3^Hamming over a random floor in [0.05, 0.25] (rugged). Search with seed 0: lr x hidden at "
             "eps 0.05 (hypergrid skips lr 3e-3 x hidden 256: too slow for the budget), then eps in {0, 0.1} at the "
             "best (lr, hidden); score = mean TV over betas 1-3 and the group's two tasks at the setting's last "
             "checkpoint within the time budget (60 s training on hypergrid 4x8, 20 s on each custom task; "
             "hypergrid 2x8 is not budgeted). `rounds` = first in-budget checkpoint whose mean over seeds 0-2 is "
             "within 10 % (+0.005) of the best in-budget checkpoint; in budget = the fastest seed's training "
             "time fits (load only adds time).", "",
             "## Chosen defaults", "",
             "| task class | hidden | eps | lr | rounds |", "|---|---|---|---|---|"]
    for group, c in chosen.items():
        lines.append(f"| {group} | {c['hidden']} | {c['eps']:g} | {c['lr']:g} | {c['rounds']} |")
    lines += ["", "## Uniform sampler TV (reference)", "", "| task | objects | beta=1 | beta=2 | beta=3 | mean |",
              "|---|---|---|---|---|---|"]
    for name, task in tasks.items():
        tv = [uniform_tv(task, b) for b in BETAS]
        lines.append(f"| {name} | {task.n_objects} | " + " | ".join(fmt(v) for v in tv)
                     + f" | {fmt(statistics.fmean(tv))} |")
    for group, c in chosen.items():
        cps = CHECKPOINTS[group]
        lines += ["", f"## {group}: search, seed 0", "",
                  "Per-task TV at the last checkpoint "
                  f"({cps[-1]} rounds), the group score (at the checkpoint in brackets), and the mean TV over "
                  "betas at each checkpoint (train seconds in brackets). ** = chosen.", "",
                  "| lr | hidden | eps | task | beta=1 | beta=2 | beta=3 | mean | group score | mean TV (train s) per "
                  f"checkpoint {', '.join(map(str, cps))} |", "|---|---|---|---|---|---|---|---|---|---|"]
        for lr, hidden, eps, score, at in c["tried"]:
            for name in GROUPS[group]:
                r = store.data["runs"][key(name, lr, hidden, eps, 0)]
                last = r["curve"][-1]
                mark = " **" if (lr, hidden, eps) == (c["lr"], c["hidden"], c["eps"]) else ""
                lines.append(f"| {lr:g}{mark} | {hidden} | {eps:g} | {name} | "
                             + " | ".join(fmt(v) for v in last["tv"])
                             + f" | {fmt(last['tv_mean'])} | {fmt(score)} ({at}) | "
                             + ", ".join(f"{fmt(p['tv_mean'])} ({p['seconds']:.0f})" for p in r["curve"]) + " |")
        lines += ["", f"## {group}: chosen setting (lr {c['lr']:g}, hidden {c['hidden']}, eps {c['eps']:g}), "
                  "seeds 0, 1, 2, per checkpoint", "",
                  "| task | rounds | train s (mean) | beta=1 | beta=2 | beta=3 | mean TV | seeds' mean TV |",
                  "|---|---|---|---|---|---|---|---|"]
        for name in GROUPS[group]:
            runs = [store.data["runs"][key(name, c["lr"], c["hidden"], c["eps"], s)] for s in (0, 1, 2)]
            for i, ckpt in enumerate(cps):
                pts = [r["curve"][i] for r in runs]
                tv = [statistics.fmean(p["tv"][j] for p in pts) for j in range(len(BETAS))]
                mark = " **" if ckpt == c["rounds"] else ""
                lines.append(f"| {name} | {ckpt}{mark} | {statistics.fmean(p['seconds'] for p in pts):.1f} | "
                             + " | ".join(fmt(v) for v in tv) + f" | {fmt(statistics.fmean(tv))} | "
                             + ", ".join(fmt(p["tv_mean"]) for p in pts) + " |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "tune_defaults.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--fresh", action="store_true", help="ignore cached runs")
    parser.add_argument("--store", default="tune_defaults.json", help="cache file under benchmarks/results/")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = Store(RESULTS / args.store, args.fresh)
    tasks = make_tasks()
    chosen = {g: tune(store, tasks, g) for g in args.groups}
    store.data["chosen"] = chosen
    store.save()
    command = "python benchmarks/tune_defaults.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])
                                                       if (argv or sys.argv[1:]) else "")
    print(write_markdown(store, {n: tasks[n] for g in args.groups for n in GROUPS[g]}, chosen, command))


if __name__ == "__main__":
    main()
