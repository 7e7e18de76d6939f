"""Scaling curves (issue 11, item 3): time per training round and peak memory against sequence length, alphabet size
and batch size, and the time of exact evaluation against the size of the space.

Training setting: a synthetic sequence task (``CustomTask``, reward 1 + number of copies of the first letter),
prepend-append MDP, TB, ``ModelConfig(conditioning="logit", hidden=128)``, beta ~ U[1, 3], the online protocol
(``batch`` on-policy + ``replay`` replayed trajectories per round). One factor varies at a time. Every setting runs
in a fresh subprocess with one torch thread, from this repository's ``src`` (the current code is measured).

Per setting: warm-up rounds, then the median wall (``perf_counter``) and CPU (``process_time``) ms per round over
the timed rounds (fewer for slow settings, within ``--budget`` seconds), the mean CPU ms per round spent in the
rollouts, the loss's forward pass, backward + clipping + Adam, and the rest (reward calls, replay buffer, priors),
and the peak resident memory (RSS) reached during the rounds above the RSS just before the first round (the
high-water mark is reset through ``/proc/self/clear_refs`` where Linux allows it). Exact evaluation: the seconds
of ``exact.terminal_distribution`` (the DP over every state) and of ``exact.exact_metrics`` at beta = 2 on
enumerable spaces, against the number of states.

Usage: ``python benchmarks/scaling.py [--quick] [--factors length alphabet batch exact large] [--rounds N]
[--out PREFIX]`` writes ``PREFIX.json``, ``PREFIX.md`` and ``PREFIX.png`` (default ``benchmarks/results/scaling``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARK = "SCALING_RESULT "
PROTEIN = "ACDEFGHIKLMNPQRSTVWY"  # the 20 amino acids; alphabet K uses the first K letters
HIDDEN = 128
FACTORS = ("length", "alphabet", "batch", "exact", "large")

# (x name, list of settings) per training factor; exact: (series, settings)
FULL: dict[str, Any] = {
    "length": [{"length": n, "alphabet": 4, "batch": 32} for n in (8, 16, 32, 64, 128, 256)],
    "alphabet": [{"length": 32, "alphabet": k, "batch": 32} for k in (4, 8, 12, 16, 20)],
    "batch": [{"length": 32, "alphabet": 4, "batch": b} for b in (16, 64, 256, 1024, 4096)],
    "large": [{"length": 256, "alphabet": 20, "batch": 32, "sample_check": True}],
    "exact": ([{"space": "sequence", "alphabet": 4, "length": n} for n in range(4, 11)]
              + [{"space": "sequence", "alphabet": 2, "length": n} for n in (8, 10, 12, 14, 16, 18, 19, 20)]
              + [{"space": "hypergrid", "ndim": 4, "height": h} for h in (4, 8, 12, 16, 24, 32)]
              + [{"space": "hypergrid", "ndim": 2, "height": h} for h in (16, 64, 256, 512)]),
}
QUICK: dict[str, Any] = {
    "length": [{"length": n, "alphabet": 4, "batch": 32} for n in (8, 32, 128)],
    "alphabet": [{"length": 32, "alphabet": k, "batch": 32} for k in (4, 12, 20)],
    "batch": [{"length": 32, "alphabet": 4, "batch": b} for b in (16, 256, 1024)],
    "large": [{"length": 256, "alphabet": 20, "batch": 32, "sample_check": True}],
    "exact": ([{"space": "sequence", "alphabet": 4, "length": n} for n in (4, 6, 8)]
              + [{"space": "sequence", "alphabet": 2, "length": n} for n in (8, 11, 14)]
              + [{"space": "hypergrid", "ndim": 4, "height": h} for h in (4, 8, 12)]),
}
X_OF = {"length": "length", "alphabet": "alphabet", "batch": "batch"}
COMPONENTS = ("rollout", "loss", "backward", "rest")


# ------------------------------------------------------------------------------------------- worker side
def reward_first_letter(alphabet: str) -> Callable[[list[str]], list[float]]:
    """Reward 1 + number of copies of the alphabet's first letter (cheap, positive, any alphabet and length)."""
    letter = alphabet[0]

    def fn(strings: list[str]) -> list[float]:
        return [1.0 + s.count(letter) for s in strings]

    return fn


def sequence_task(alphabet_size: int, length: int) -> Any:
    """A ``CustomTask`` over the first ``alphabet_size`` amino-acid letters (``a``.. beyond 20)."""
    from thermogfn.tasks.custom import CustomTask

    letters = (PROTEIN + "BJOUXZ" + "abcdefghijklmnopqrstuvwxyz")[:alphabet_size]
    return CustomTask(reward_first_letter(letters), letters, length, name=f"count{alphabet_size}x{length}")


def run_config(batch: int, replay: int, mdp: str) -> Any:
    """The benchmark's training config (prepend-append or hypergrid MDP, TB, logit conditioning, U[1, 3])."""
    from thermogfn.config import ModelConfig, RunConfig

    return RunConfig(mdp=mdp, objective="tb", batch_size=batch, replay_batch=replay, beta_train="uniform:1:3",
                     model=ModelConfig(conditioning="logit", hidden=HIDDEN), seed=0)


def _status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` field in kB (None where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> tuple[float, str]:
    """Reset the RSS high-water mark if Linux allows it; returns (current RSS MB, method)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM reset via /proc/self/clear_refs, peak = ru_maxrss"
    except OSError:
        method = "ru_maxrss since process start (no reset possible): an upper bound"
    rss = _status_kb("VmRSS")
    return (rss / 1024 if rss is not None else float("nan")), method


def tensor_peak_mb(fn: Callable[[], Any]) -> float | None:
    """Peak bytes of torch tensors allocated by ``fn`` and alive at once (MB), from the torch profiler's allocation
    events (``profile_memory``); tensors that existed before are not counted. None if the profiler fails."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except (AttributeError, RuntimeError):
        return None
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak / 2**20


def peak_rss_mb() -> float:
    """The process's peak RSS in MB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Accumulated wall and CPU seconds per named part, and the rows (first dimension of the first tensor argument)
    it was called on: total and largest."""

    def __init__(self) -> None:
        self.total: dict[str, list[float]] = {}
        self.rows: dict[str, list[int]] = {}
        self.wrapped: list[tuple[Any, str]] = []

    def wrap(self, obj: Any, attr: str, key: str) -> bool:
        """Replace ``obj.attr`` by a timed call of itself (instance attribute); False if it does not exist."""
        original = getattr(obj, attr, None)
        if original is None:
            return False
        acc = self.total.setdefault(key, [0.0, 0.0])
        rows = self.rows.setdefault(key, [0, 0])

        def timed(*args: Any, **kwargs: Any) -> Any:
            n = args[0].shape[0] if args and hasattr(args[0], "shape") and args[0].dim() > 0 else 0
            rows[0] += n
            rows[1] = max(rows[1], n)
            w, c = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                acc[0] += time.perf_counter() - w
                acc[1] += time.process_time() - c

        setattr(obj, attr, timed)
        self.wrapped.append((obj, attr))
        return True

    def unwrap(self) -> None:
        """Remove the timed instance attributes (the class's methods show through again)."""
        for obj, attr in self.wrapped:
            delattr(obj, attr)
        self.wrapped.clear()

    def snapshot(self) -> dict[str, tuple[float, float]]:
        """The accumulated (wall, CPU) seconds per part."""
        return {k: (v[0], v[1]) for k, v in self.total.items()}


def rusage_delta(before: resource.struct_rusage, n: int) -> dict[str, float]:
    """User and system CPU ms and minor page faults per call since ``before``, over ``n`` calls."""
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_ms": (after.ru_utime - before.ru_utime) / n * 1e3,
            "sys_ms": (after.ru_stime - before.ru_stime) / n * 1e3,
            "minor_faults": (after.ru_minflt - before.ru_minflt) / n}


def summary_ms(values: list[float]) -> dict[str, float]:
    """Median, mean, 10th and 90th percentile of seconds, in ms."""
    ms = sorted(v * 1e3 for v in values)
    q = statistics.quantiles(ms, n=10) if len(ms) > 1 else [ms[0]] * 9
    return {"median": statistics.median(ms), "mean": statistics.fmean(ms), "p10": q[0], "p90": q[-1], "n": len(ms)}


def one_hot_mb(length: int, alphabet: int, rows: int) -> float:
    """MB of the float32 one-hot input of one re-scoring pass: rows * (L+1) states of width L*(K+1)."""
    return rows * (length + 1) * length * (alphabet + 1) * 4 / 2**20


def run_train(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm-up and timed rounds of one training setting, with a per-part split and the peak RSS growth."""
    import torch

    from thermogfn.gfn import GFlowNetTrainer

    torch.set_num_threads(1)
    length, alphabet, batch = spec["length"], spec["alphabet"], spec["batch"]
    replay = spec.get("replay", batch)
    w0 = time.perf_counter()
    task = sequence_task(alphabet, length)
    trainer = GFlowNetTrainer(run_config(batch, replay, "prepend-append"), task)
    setup_s = time.perf_counter() - w0
    clock = Clock()
    # rollouts, the update (loss forward + gradient step) and the gradient step (backward, clipping, Adam)
    split = all([clock.wrap(trainer, "_forward_rollout", "rollout_fwd"),
                 clock.wrap(trainer, "_backward_rollout", "rollout_bwd"),
                 clock.wrap(trainer, "_update", "update"), clock.wrap(trainer, "gradient_step", "backward")])
    base_mb, mem_method = reset_peak()

    def one_round() -> tuple[float, float, dict[str, tuple[float, float]]]:
        before = clock.snapshot()
        w, c = time.perf_counter(), time.process_time()
        trainer.train_round()
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        after = clock.snapshot()
        return wall, cpu, {k: (after[k][0] - before.get(k, (0, 0))[0], after[k][1] - before.get(k, (0, 0))[1])
                           for k in after}

    warm: list[float] = []
    while len(warm) < spec["warmup"] and (len(warm) < spec["min_warmup"] or sum(warm) < spec["budget"] / 2):
        warm.append(one_round()[0])
    per_round = statistics.median(warm)
    n_rounds = max(spec["min_rounds"], min(spec["rounds"], int(spec["budget"] / max(per_round, 1e-6))))
    walls, cpus, parts = [], [], []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(n_rounds):
        wall, cpu, part = one_round()
        walls.append(wall)
        cpus.append(cpu)
        parts.append(part)
    usage_per_round = rusage_delta(usage, n_rounds)
    peak_mb = peak_rss_mb()
    tensor_mb = tensor_peak_mb(trainer.train_round)  # one more round, under the profiler (not timed)
    out: dict[str, Any] = {
        "length": length, "alphabet": alphabet, "batch": batch, "replay": replay, "warmup": len(warm),
        "rounds": n_rounds, "setup_s": setup_s, "rusage_per_round": usage_per_round, "wall_ms": summary_ms(walls),
        "cpu_ms": summary_ms(cpus),
        "rss_base_mb": base_mb, "rss_peak_mb": peak_mb, "rss_growth_mb": max(0.0, peak_mb - base_mb),
        "memory_method": mem_method, "tensor_peak_mb": tensor_mb,
        "one_hot_mb_per_update": one_hot_mb(length, alphabet, max(batch, replay)),
        "network_rows_per_round": batch * length + (batch + replay) * (length + 1),
        "input_width": length * (alphabet + 1), "buffer_size": len(trainer.buffer),
        "loadavg_1m": os.getloadavg()[0],
    }
    if split:  # mean ms per round of each part; loss = update - gradient step; rest = round - the others
        def mean_part(key: str, idx: int) -> float:
            return statistics.fmean(p.get(key, (0.0, 0.0))[idx] for p in parts) * 1e3

        for idx, name in ((0, "wall"), (1, "cpu")):
            rollout = mean_part("rollout_fwd", idx) + mean_part("rollout_bwd", idx)
            update, backward = mean_part("update", idx), mean_part("backward", idx)
            total = statistics.fmean(walls if idx == 0 else cpus) * 1e3
            out[f"{name}_parts_ms"] = {"rollout": rollout, "rollout_forward": mean_part("rollout_fwd", idx),
                                       "rollout_backward": mean_part("rollout_bwd", idx), "loss": update - backward,
                                       "backward": backward, "rest": total - rollout - update, "total": total}
    if spec.get("sample_check"):
        out["sample_check"] = sample_check(trainer, task)
    return out


def sample_check(trainer: Any, task: Any) -> dict[str, Any]:
    """Sampling from the trained model at this size: ``forward_rollout`` of 8 at beta 1 and ``draw_samples``."""
    import torch

    from thermogfn.evaluate import draw_samples
    from thermogfn.sampling import forward_rollout

    w = time.perf_counter()
    traj = forward_rollout(trainer.model, torch.ones(8))
    rollout_ms = (time.perf_counter() - w) * 1e3
    w = time.perf_counter()
    x, raw = draw_samples(trainer, 1.0, 64)
    draw_ms = (time.perf_counter() - w) * 1e3
    objects = traj.objects
    ok = (tuple(objects.shape) == (8, task.length) and bool(((objects >= 0) & (objects < task.vocab_size)).all())
          and tuple(x.shape) == (64, task.length) and bool(torch.isfinite(raw).all()))
    return {"ok": ok, "forward_rollout_8_ms": rollout_ms, "draw_samples_64_ms": draw_ms,
            "mean_reward_64": float(raw.mean()), "example": task.decode(x[:1])[0]}


def run_exact(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds of the exact DP (``terminal_distribution``) and of ``exact_metrics`` at beta 2 on one space."""
    import torch

    from thermogfn.exact import MAX_EXACT_STATES, exact_enumerable, exact_metrics, terminal_distribution
    from thermogfn.gfn import GFlowNetTrainer
    from thermogfn.tasks.hypergrid import HypergridTask

    torch.set_num_threads(1)
    w0 = time.perf_counter()
    if spec["space"] == "hypergrid":
        task, mdp = HypergridTask(spec["ndim"], spec["height"]), "hypergrid"
    else:
        task, mdp = sequence_task(spec["alphabet"], spec["length"]), "prepend-append"
    trainer = GFlowNetTrainer(run_config(32, 32, mdp), task)  # builds the reward table too (<= 2**22 objects)
    setup_s = time.perf_counter() - w0
    model = trainer.model
    out: dict[str, Any] = {**{k: v for k, v in spec.items() if k in ("space", "alphabet", "length", "ndim",
                                                                        "height")},
                           "n_states": model.mdp.n_states(), "n_objects": task.n_objects,
                           "levels": model.mdp.max_steps + 1, "input_width": model.mdp.encoding_dim,
                           "setup_s": setup_s, "max_exact_states": MAX_EXACT_STATES}
    out["enumerable"] = bool(exact_enumerable(model.mdp, task))
    if not out["enumerable"]:
        return out
    base_mb, mem_method = reset_peak()

    def timed(fn: Callable[[], Any]) -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - w, time.process_time() - c

    # warm-up call, split by wrapping the network call, the enumeration of states and their indexing
    clock = Clock()
    clock.wrap(model, "forward_log_probs", "network")
    clock.wrap(model.mdp, "states_by_level", "enumeration")
    clock.wrap(model.mdp, "state_index", "indexing")
    first = timed(lambda: terminal_distribution(model, task, 2.0))
    clock.unwrap()
    split = {k: v[1] * 1e3 for k, v in clock.total.items()}
    network_rows, network_max_rows = clock.rows.get("network", [0, 0])
    split["rest"] = first[1] * 1e3 - sum(split.values())
    split["total"] = first[1] * 1e3
    walls, cpus = [], []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    while not walls or (len(walls) < spec["repeats"] and sum(walls) + first[0] < spec["budget"]):
        wall, cpu = timed(lambda: terminal_distribution(model, task, 2.0))
        walls.append(wall)
        cpus.append(cpu)
    usage_per_call = rusage_delta(usage, len(walls))
    metrics: dict[str, float] = {}
    wall_m, cpu_m = timed(lambda: metrics.update(exact_metrics(model, task, 2.0)))
    peak_mb = peak_rss_mb()
    tensor_mb = tensor_peak_mb(lambda: terminal_distribution(model, task, 2.0))
    out.update({"dp_wall_ms": summary_ms(walls), "dp_cpu_ms": summary_ms(cpus), "dp_first_wall_ms": first[0] * 1e3,
                "dp_first_cpu_parts_ms": split, "rusage_per_call": usage_per_call, "network_rows": network_rows,
                "network_max_rows": network_max_rows,
                "network_us_per_row": split.get("network", float("nan")) * 1e3 / max(network_rows, 1),
                "metrics_wall_ms": wall_m * 1e3, "metrics_cpu_ms": cpu_m * 1e3, "mass": metrics.get("mass"),
                "rss_base_mb": base_mb, "rss_peak_mb": peak_mb, "rss_growth_mb": max(0.0, peak_mb - base_mb),
                "memory_method": mem_method, "tensor_peak_mb": tensor_mb, "loadavg_1m": os.getloadavg()[0]})
    return out


def worker(spec: dict[str, Any]) -> None:
    """Entry point of a fresh subprocess: run one setting and print its result as one marked JSON line."""
    result = run_exact(spec) if spec["kind"] == "exact" else run_train(spec)
    print(MARK + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------- driver side
def run_setting(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one setting in a fresh interpreter (one thread, this repository's ``src`` first on the path)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"setting {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y against log x (None with fewer than two positive points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y is not None and y > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx > 0 else None


def local_slopes(xs: list[float], ys: list[float]) -> list[float | None]:
    """Slope of each consecutive pair of points (log-log)."""
    return [slope(xs[i: i + 2], ys[i: i + 2]) for i in range(len(xs) - 1)]


def train_metrics(r: dict[str, Any]) -> dict[str, float | None]:
    """The quantities whose growth is fitted, per training setting."""
    parts = r.get("cpu_parts_ms", {})
    usage = r.get("rusage_per_round", {})
    return {"wall_ms": r["wall_ms"]["median"], "cpu_ms": r["cpu_ms"]["median"], "user_ms": usage.get("user_ms"),
            **{f"cpu_{c}_ms": parts.get(c) for c in COMPONENTS}, "rss_growth_mb": r["rss_growth_mb"] or None,
            "tensor_peak_mb": r.get("tensor_peak_mb")}


def fit_factor(rows: list[dict[str, Any]], x_key: str) -> dict[str, Any]:
    """Overall and tail (last three points) log-log slopes of every metric against ``x_key``, and local slopes."""
    xs = [r[x_key] for r in rows]
    out: dict[str, Any] = {"x": x_key, "range": [min(xs), max(xs)]}
    for name in train_metrics(rows[0]):
        ys = [train_metrics(r)[name] for r in rows]
        out[name] = {"slope": slope(xs, ys), "tail_slope": slope(xs[-3:], ys[-3:]), "local": local_slopes(xs, ys)}
    return out


def series_of(spec: dict[str, Any]) -> str:
    """Name of an exact-evaluation series: the fixed parameter."""
    if spec["space"] == "hypergrid":
        return f"hypergrid ndim={spec['ndim']}"
    return f"sequence K={spec['alphabet']}"


DP_PARTS = ("network", "enumeration", "indexing", "rest")


def exact_metrics_of(r: dict[str, Any]) -> dict[str, float | None]:
    """The quantities whose growth is fitted, per exact-evaluation setting."""
    parts = r.get("dp_first_cpu_parts_ms", {})
    return {"dp_cpu_ms": r["dp_cpu_ms"]["median"], "dp_wall_ms": r["dp_wall_ms"]["median"],
            **{f"{p}_ms": parts.get(p) for p in DP_PARTS}, "rss_growth_mb": r["rss_growth_mb"] or None,
            "tensor_peak_mb": r.get("tensor_peak_mb")}


def fit_exact(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per series: slopes of the DP's time, its parts and its memory against the number of states."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(series_of(r) for r in rows):
        pts = [r for r in rows if series_of(r) == name and r.get("enumerable")]
        if len(pts) < 2:
            continue
        xs = [r["n_states"] for r in pts]
        fit: dict[str, Any] = {"range_states": [min(xs), max(xs)]}
        for key in exact_metrics_of(pts[0]):
            ys = [exact_metrics_of(r)[key] for r in pts]
            fit[key] = {"slope": slope(xs, ys), "tail_slope": slope(xs[-3:], ys[-3:]), "local": local_slopes(xs, ys)}
        out[name] = fit
    return out


def fmt(v: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals, ``-`` for None."""
    return "-" if v is None else f"{v:.{digits}f}"


def fmt_ms(v: float) -> str:
    """Milliseconds with about three significant digits."""
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def train_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table of one training factor."""
    lines = ["| L | K | batch+replay | rounds | wall ms/round (p10-p90) | CPU ms/round | of which system | rollout "
             "| loss fwd | backward+Adam | rest | minor faults/round | peak RSS growth MB | tensor peak MB "
             "| one-hot input MB/update |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r.get("cpu_parts_ms", {})
        u = r.get("rusage_per_round", {})
        w, c = r["wall_ms"], r["cpu_ms"]
        parts = " | ".join(fmt_ms(p[k]) if k in p else "-" for k in COMPONENTS)
        lines.append(f"| {r['length']} | {r['alphabet']} | {r['batch']}+{r['replay']} | {r['rounds']} "
                     f"| {fmt_ms(w['median'])} ({fmt_ms(w['p10'])}-{fmt_ms(w['p90'])}) | {fmt_ms(c['median'])} "
                     f"| {fmt_ms(u.get('sys_ms', float('nan')))} | {parts} | {u.get('minor_faults', 0):,.0f} "
                     f"| {r['rss_growth_mb']:.0f} | {fmt(r.get('tensor_peak_mb'), 1)} "
                     f"| {r['one_hot_mb_per_update']:.1f} |")
    return lines


def slope_table(fits: dict[str, Any]) -> list[str]:
    """Markdown table of the growth exponents per training factor."""
    lines = ["| factor | range | wall | CPU | CPU, last 3 points | CPU, last 2 points | user CPU, last 2 | rollout "
             "| loss fwd | backward+Adam | rest | peak RSS growth | tensor peak | tensor peak, last 2 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for factor, f in fits.items():
        def s(name: str, key: str = "slope", fit: dict[str, Any] = f) -> str:
            return fmt(fit[name][key]) if key != "last" else fmt(fit[name]["local"][-1])

        lines.append(f"| {factor} | {f['range'][0]}-{f['range'][1]} | {s('wall_ms')} | {s('cpu_ms')} "
                     f"| {s('cpu_ms', 'tail_slope')} | {s('cpu_ms', 'last')} | {s('user_ms', 'last')} "
                     f"| {s('cpu_rollout_ms')} | {s('cpu_loss_ms')} | {s('cpu_backward_ms')} | {s('cpu_rest_ms')} "
                     f"| {s('rss_growth_mb')} | {s('tensor_peak_mb')} | {s('tensor_peak_mb', 'last')} |")
    return lines


def exact_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table of the exact-evaluation settings."""
    lines = ["| space | K / ndim | L / height | states | objects | levels | input width | DP wall ms | DP CPU ms "
             "| network | enumeration | indexing | rest | network us/row (largest call) | exact_metrics wall ms "
             "| peak RSS growth MB | tensor peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fixed, var = (r["ndim"], r["height"]) if r["space"] == "hypergrid" else (r["alphabet"], r["length"])
        head = (f"| {r['space']} | {fixed} | {var} | {r['n_states']:,} | {r['n_objects']:,} | {r['levels']} "
                f"| {r['input_width']} |")
        if not r.get("enumerable"):
            lines.append(head + f" not enumerable (> {r['max_exact_states']:,} states) |" + " |" * 9)
            continue
        p = r.get("dp_first_cpu_parts_ms", {})
        parts = " | ".join(fmt_ms(p[k]) if k in p else "-" for k in DP_PARTS)
        lines.append(head + f" {fmt_ms(r['dp_wall_ms']['median'])} | {fmt_ms(r['dp_cpu_ms']['median'])} | {parts} "
                            f"| {fmt(r.get('network_us_per_row'))} ({r.get('network_max_rows', 0):,}) "
                            f"| {fmt_ms(r['metrics_wall_ms'])} | {r['rss_growth_mb']:.0f} "
                            f"| {fmt(r.get('tensor_peak_mb'), 1)} |")
    return lines


def share(r: dict[str, Any], part: str, key: str = "cpu_parts_ms") -> float:
    """Fraction of the CPU time of a round (or of the DP) spent in ``part``."""
    p = r.get(key, {})
    return p.get(part, float("nan")) / p["total"] if p.get("total") else float("nan")


def growth(s: float | None) -> str:
    """A slope in words."""
    if s is None:
        return "unmeasured"
    return "faster than linearly" if s > 1.1 else "about linearly" if s >= 0.9 else "slower than linearly"


def joined(values: list[float | None]) -> str:
    """Slopes as a comma-separated list."""
    return ", ".join(fmt(v) for v in values)


MMAP_NOTE = (": tensors over glibc's mmap threshold, at most 32 MB, are mapped and zero-filled by the kernel afresh at "
             "each allocation")


def sys_share(r: dict[str, Any]) -> float:
    """Fraction of a round's CPU time spent in the kernel."""
    u = r.get("rusage_per_round", {})
    total = u.get("user_ms", 0.0) + u.get("sys_ms", 0.0)
    return u.get("sys_ms", 0.0) / total if total > 0 else 0.0


def explain_length(rows: list[dict[str, Any]], f: dict[str, Any]) -> str:
    """Where and why the cost grows with the sequence length."""
    a, b, c = rows[0], rows[-2], rows[-1]
    loc = f["cpu_ms"]["local"]
    first_super = next((rows[i]["length"] for i, v in enumerate(loc) if v is not None and v > 1.1), None)
    where = (f"faster than linearly from L = {first_super} on" if first_super is not None
             else "never faster than linearly in this range")
    u = c.get("rusage_per_round", {})
    states_mb = c["batch"] * (c["length"] + 1) * c["length"] * 8 / 2**20
    return (
        f"**Length (K = {a['alphabet']}, batch {a['batch']} + {a['replay']}).** CPU ms per round: local slopes "
        f"{joined(loc)} between consecutive lengths: {growth(loc[0])} at short lengths, where a round is L "
        f"sequential rollout steps of small ops whose per-call overhead dominates (rollout {share(a, 'rollout'):.0%} "
        f"of the round at L = {a['length']}), and {where} (slope {fmt(loc[-1])} from L = {b['length']} to "
        f"{c['length']}). Why: a round puts about 3 x batch x L states through the network (batch x L in the "
        f"rollout, 2 x batch x (L + 1) re-scored by the two updates), each an L(K + 1)-wide one-hot input "
        f"({a['input_width']} at L = {a['length']}, {c['input_width']} at L = {c['length']}); once L(K + 1) "
        f"exceeds 2 x {HIDDEN} the first layer outweighs the two {HIDDEN} x {HIDDEN} layers, so the arithmetic per "
        f"round tends to batch x L^2 x (K + 1). The MDP's tensors are L wide as well (each rollout step and merge "
        f"works on batch x L int64 states, L steps per rollout). Between the last two lengths: loss fwd slope "
        f"{fmt(f['cpu_loss_ms']['local'][-1])}, rollout {fmt(f['cpu_rollout_ms']['local'][-1])}, backward+Adam "
        f"{fmt(f['cpu_backward_ms']['local'][-1])} (the first layer's backward is its weight gradient only, the "
        f"input needs none, and clipping and Adam scale with the parameters, linear in L), user CPU alone "
        f"{fmt(f['user_ms']['local'][-1])}; system time is {u.get('sys_ms', float('nan')):.0f} of "
        f"{c['cpu_ms']['median']:.0f} ms at L = {c['length']} ({u.get('minor_faults', 0) / 1e3:.0f}k minor page "
        f"faults per round{MMAP_NOTE if sys_share(c) > 0.05 else ''}). Memory grows "
        f"{growth(f['tensor_peak_mb']['local'][-1])} at the top: tensor peak slope "
        f"{fmt(f['tensor_peak_mb']['local'][-1])} and peak RSS slope {fmt(f['rss_growth_mb']['local'][-1])} between "
        f"the last two lengths ({b['tensor_peak_mb']:.0f} -> {c['tensor_peak_mb']:.0f} MB of live tensors): each "
        f"update keeps batch x (L + 1) rows alive for the backward pass, with an L(K + 1) float32 input "
        f"({c['one_hot_mb_per_update']:.0f} MB at L = {c['length']}) and several batch x (L + 1) x L int64 "
        f"state tensors ({states_mb:.0f} MB each), all proportional to L^2.")


def explain_alphabet(rows: list[dict[str, Any]], f: dict[str, Any], results: dict[str, Any]) -> str:
    """Where and why the cost grows with the alphabet."""
    a, c = rows[0], rows[-1]
    text = (
        f"**Alphabet (L = {a['length']}).** CPU slope {fmt(f['cpu_ms']['slope'])}: the cost grows "
        f"{growth(f['cpu_ms']['slope'])} in K ({a['cpu_ms']['median']:.1f} -> {c['cpu_ms']['median']:.1f} ms for "
        f"K = {a['alphabet']} -> {c['alphabet']}). Only the input width L(K + 1) and the 2K + 1 actions grow with "
        f"K; the number of states, steps and network calls per round does not, so the cost is affine in K: a fixed "
        f"part (the hidden layers, the rollout's L sequential steps, per-op overhead) plus a part proportional to "
        f"K + 1 (the first layer, the one-hot lookup, Gumbel noise and log-softmax over the actions); the loss "
        f"forward, where the first layer weighs most, has the largest slope ({fmt(f['cpu_loss_ms']['slope'])}). "
        f"Memory follows the one-hot input ({a['one_hot_mb_per_update']:.1f} -> {c['one_hot_mb_per_update']:.1f} MB "
        f"per update; tensor peak slope {fmt(f['tensor_peak_mb']['slope'])}). Nothing here grows faster than "
        f"linearly.")
    large = results.get("train", {}).get("large", [])
    length_rows = {r["length"]: r for r in results.get("train", {}).get("length", [])}
    if large and large[0]["length"] in length_rows:
        big, ref = large[0], length_rows[large[0]["length"]]
        ratio = big["cpu_ms"]["median"] / ref["cpu_ms"]["median"]
        k_slope = slope([ref["alphabet"] + 1, big["alphabet"] + 1], [ref["cpu_ms"]["median"], big["cpu_ms"]["median"]])
        text += (f" At L = {big['length']} the K-proportional part weighs more: K = {ref['alphabet']} -> "
                 f"{big['alphabet']} costs x{ratio:.2f} ({ref['cpu_ms']['median']:.0f} -> "
                 f"{big['cpu_ms']['median']:.0f} ms) for x{(big['alphabet'] + 1) / (ref['alphabet'] + 1):.1f} input "
                 f"width, a slope of {fmt(k_slope)} against K + 1.")
    return text


def explain_batch(rows: list[dict[str, Any]], f: dict[str, Any]) -> str:
    """Where and why the cost grows with the batch."""
    a, b, c = rows[0], rows[-2], rows[-1]
    loc = f["cpu_ms"]["local"]
    ub, uc = b.get("rusage_per_round", {}), c.get("rusage_per_round", {})
    return (
        f"**Batch (L = {a['length']}, K = {a['alphabet']}, replay = batch).** CPU ms per round: local slopes "
        f"{joined(loc)}: {growth(loc[0])} at small batches, where per-op overhead dominates "
        f"({a['cpu_ms']['median']:.0f} ms at batch {a['batch']}, {rows[1]['cpu_ms']['median']:.0f} ms at "
        f"{rows[1]['batch']}), then "
        f"{growth(loc[-1])} from {b['batch']} to {c['batch']} (slope {fmt(loc[-1])}). Every tensor op is linear in "
        f"the batch, and so is the user CPU time (slope {fmt(f['user_ms']['local'][-1])} over that step). System "
        f"time: {ub.get('sys_ms', float('nan')):.0f} ms per round at batch {b['batch']}, "
        f"{uc.get('sys_ms', float('nan')):.0f} ms at {c['batch']} ({ub.get('minor_faults', 0) / 1e3:.0f}k -> "
        f"{uc.get('minor_faults', 0) / 1e3:.0f}k minor page faults per round)"
        + (f"{MMAP_NOTE} (at batch {c['batch']} one hidden activation of the re-scoring pass is "
           f"{c['batch'] * (c['length'] + 1) * HIDDEN * 4 / 2**20:.0f} MB); that kernel work, not the arithmetic, is "
           f"what grows faster than linearly" if sys_share(c) > 0.05 else "") + ". The Python bookkeeping (reward "
        f"cache and replay dedup by per-object keys, the buffer's argsort over every object seen, which also grows "
        f"with the rounds) is the 'rest', {share(c, 'rest'):.1%} of the round at batch {c['batch']}. Memory is "
        f"linear at large batches (tensor peak slope {fmt(f['tensor_peak_mb']['local'][-1])} over the last step: "
        f"{c['tensor_peak_mb']:.0f} MB at batch {c['batch']}, mostly the saved activations, "
        f"{c['one_hot_mb_per_update']:.0f} MB of it the one-hot input).")


def explain_exact(rows: list[dict[str, Any]], fits: dict[str, Any]) -> str:
    """Where and why exact evaluation grows faster than the number of states."""
    per_series = []
    for name, fit in fits.items():
        top = [r for r in rows if series_of(r) == name and r.get("enumerable")][-1]
        p = top.get("dp_first_cpu_parts_ms", {})
        split = ", ".join(f"{k} {p.get(k, float('nan')) / p['total']:.0%}" for k in DP_PARTS) if p.get("total") else ""
        per_series.append(f"{name}: slope {fmt(fit['dp_cpu_ms']['slope'])} overall, local "
                          f"{joined(fit['dp_cpu_ms']['local'])}; at {top['n_states']:,} states {split}")
    seq = [r for r in rows if r["space"] == "sequence" and r.get("enumerable")]
    grid = [r for r in rows if r["space"] == "hypergrid" and r.get("enumerable")]
    text = ("**Exact evaluation.** CPU time of `terminal_distribution` against the number of states (split of the "
            "first call: the network, `mdp.states_by_level`, `mdp.state_index`, the rest): " + "; ".join(per_series)
            + ". The DP visits every state once, one level at a time, so its cost is the number of states times a "
            "cost per state, plus a cost per level; small spaces are dominated by the per-level calls (slopes below "
            "1), large ones by the per-state work, which is not constant.")
    if seq:
        seq_fits = {n: fit for n, fit in fits.items() if n.startswith("sequence")}
        shares = [share([r for r in seq if series_of(r) == n][-1], "network", "dp_first_cpu_parts_ms")
                  for n in seq_fits]
        text += (" Sequences: each state's ~2K children are built by `mdp.step` and located by `state_index`, both "
                 "working over all L positions of the padded state (weights K^(L-1-i), `where`, `sum`), and "
                 "`states_by_level` writes L digits per state; so the per-state work grows with L = log_K(states) "
                 "and the DP time as states x log(states) once the per-level overhead is amortised (local slopes at "
                 "the top " + ", ".join(f"{n} {fmt(fit['dp_cpu_ms']['local'][-1])}" for n, fit in seq_fits.items())
                 + f"); the network is {min(shares):.0%}-{max(shares):.0%} of the time there.")
    if grid:
        grid_fits = {n: fit for n, fit in fits.items() if n.startswith("hypergrid")}
        text += (" Hypergrid: `HypergridMDP.states_by_level` selects each of the ndim(H - 1) + 1 levels with a "
                 "comparison over all states (`coords[level == n]`), O(states x levels); levels grow as "
                 "states^(1/ndim), so the enumeration grows as states^(1 + 1/ndim) (its local slope at the top: "
                 + "; ".join(f"{n} {fmt(fit['enumeration_ms']['local'][-1])}" for n, fit in grid_fits.items())
                 + "), and there is one network call per level.")
    rising, level = [], []
    for name in fits:
        pts = [r for r in rows if series_of(r) == name and r.get("enumerable") and r.get("network_rows")]
        if len(pts) < 2:
            continue
        low, top = min(pts, key=lambda r: r["network_us_per_row"]), pts[-1]
        words = (f"{name}: {fmt(low['network_us_per_row'])} us per state at {low['n_states']:,} states (input width "
                 f"{low['input_width']}, largest call {low['network_max_rows']:,} rows), "
                 f"{fmt(top['network_us_per_row'])} us at {top['n_states']:,} (width {top['input_width']}, "
                 f"{top['network_max_rows']:,} rows)")
        (rising if top["network_us_per_row"] > 1.15 * low["network_us_per_row"] else level).append(words)
    if rising:
        text += (" The network's cost per state, after falling while per-call overhead is amortised, rises at the "
                 "top: " + "; ".join(rising) + ". Two reasons: the input width grows with the space (L(K + 1), "
                 "ndim x height), and a level is one network call (up to 65,536 states), so bigger spaces mean "
                 f"bigger matrices whose activations (rows x {HIDDEN} floats) outgrow the CPU caches.")
    if level:
        text += (" It stays within 15% of its minimum for " + "; ".join(level) + ".")
    text += (" Memory: live tensors grow with slope "
             + ", ".join(f"{fmt(fit['tensor_peak_mb']['slope'])} ({n})" for n, fit in fits.items())
             + ": the flow vector and every state of the space are held at once (states x L int64 for sequences), "
             "plus one 65,536-state chunk of network activations at a time.")
    return text


def explain(results: dict[str, Any], fits: dict[str, Any], exact_fits: dict[str, Any]) -> list[str]:
    """One paragraph per factor: where the cost grows faster than linearly, and why (numbers from this run)."""
    out: list[str] = []
    tr = results.get("train", {})
    if "length" in fits:
        out.append(explain_length(tr["length"], fits["length"]))
    if "alphabet" in fits:
        out.append(explain_alphabet(tr["alphabet"], fits["alphabet"], results))
    if "batch" in fits:
        out.append(explain_batch(tr["batch"], fits["batch"]))
    if exact_fits:
        out.append(explain_exact(results["exact"], exact_fits))
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    """One log-log panel per factor (time, and peak RSS growth on a second row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr, ex = results.get("train", {}), results.get("exact", [])
    factors = [f for f in ("length", "alphabet", "batch") if tr.get(f)]
    ncol = len(factors) + (1 if ex else 0)
    if ncol == 0:
        return
    fig, axes = plt.subplots(2, ncol, figsize=(4.2 * ncol, 7.4), squeeze=False)
    for j, factor in enumerate(factors):
        rows = tr[factor]
        xs = [r[X_OF[factor]] for r in rows]
        ax = axes[0][j]
        ax.plot(xs, [r["wall_ms"]["median"] for r in rows], "o-", label="wall (median)")
        ax.plot(xs, [r["cpu_ms"]["median"] for r in rows], "s-", label="CPU (median)")
        for comp, style in zip(COMPONENTS[:3], (":", "--", "-."), strict=True):
            ys = [r.get("cpu_parts_ms", {}).get(comp) for r in rows]
            if all(y is not None and y > 0 for y in ys):
                ax.plot(xs, ys, style, label=f"CPU {comp}")
        tail = xs[-3:]  # reference slopes over the last three points, from the third-last CPU time
        y0 = rows[-len(tail)]["cpu_ms"]["median"]
        ax.plot(tail, [y0 * x / tail[0] for x in tail], color="grey", lw=0.8, label="slope 1")
        ax.plot(tail, [y0 * (x / tail[0]) ** 2 for x in tail], color="grey", lw=0.8, ls="--", label="slope 2")
        ax.set(xscale="log", yscale="log", xlabel=factor, ylabel="ms per round", title=f"time per round vs {factor}")
        ax.legend(fontsize=7)
        ax = axes[1][j]
        ax.plot(xs, [max(r["rss_growth_mb"], 1e-1) for r in rows], "o-", label="peak RSS growth")
        ys = [r.get("tensor_peak_mb") for r in rows]
        if all(y is not None and y > 0 for y in ys):
            ax.plot(xs, ys, "s-", label="tensor peak (profiler)")
        ax.plot(xs, [r["one_hot_mb_per_update"] for r in rows], "x--", label="one-hot input / update")
        ax.set(xscale="log", yscale="log", xlabel=factor, ylabel="MB", title=f"peak memory vs {factor}")
        ax.legend(fontsize=7)
    if ex:
        ax_t, ax_m = axes[0][-1], axes[1][-1]
        for name in dict.fromkeys(series_of(r) for r in ex):
            pts = [r for r in ex if series_of(r) == name and r.get("enumerable")]
            if not pts:
                continue
            xs = [r["n_states"] for r in pts]
            ax_t.plot(xs, [r["dp_cpu_ms"]["median"] for r in pts], "o-", label=f"{name} (CPU)")
            line = ax_m.plot(xs, [max(r["rss_growth_mb"], 1e-1) for r in pts], "o-", label=f"{name}: RSS")[0]
            ys = [r.get("tensor_peak_mb") for r in pts]
            if all(y is not None and y > 0 for y in ys):
                ax_m.plot(xs, ys, "s--", color=line.get_color(), label=f"{name}: tensors")
        xs_all = sorted(r["n_states"] for r in ex if r.get("enumerable"))
        if xs_all:
            ax_t.plot([xs_all[0], xs_all[-1]], [1e-3 * xs_all[0], 1e-3 * xs_all[-1]], color="grey", lw=0.8,
                      label="1 us per state")
        ax_t.set(xscale="log", yscale="log", xlabel="states", ylabel="ms (terminal_distribution)",
                 title="exact evaluation vs states")
        ax_m.set(xscale="log", yscale="log", xlabel="states", ylabel="MB", title="exact: peak memory")
        ax_t.legend(fontsize=7)
        ax_m.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_markdown(results: dict[str, Any], fits: dict[str, Any], exact_fits: dict[str, Any], path: Path) -> None:
    """PREFIX.md: setting, tables, slopes and the explanation."""
    meta = results["meta"]
    lines = ["# Scaling curves", "",
             f"`{meta['command']}` at {meta['commit'][:7]}, {meta['date']}, {meta['cpus']} CPUs ({meta['cpu']}), "
             f"torch {meta['torch']}, one thread per setting, each setting in a fresh subprocess, "
             f"{meta['seconds']:.0f} s in all. 1-minute load average {meta['loadavg_start']:.2f} at the start and "
             f"{meta['loadavg_end']:.2f} at the end"
             + (" (other jobs were running: the wall times are noisier than the CPU times)."
                if max(meta["loadavg_start"], meta["loadavg_end"]) > 0.5 * (meta["cpus"] or 1) else ".")
             + " CPU time is `process_time` (user + system); 'of which system' and the page faults are "
             "`getrusage` deltas over the timed rounds.", "",
             "Setting: `CustomTask` with reward 1 + count of the first letter (the first K letters of the amino-acid "
             f"alphabet), prepend-append MDP, TB, `ModelConfig(conditioning=\"logit\", hidden={HIDDEN})` (3 trunk "
             "layers), beta ~ U[1, 3], batch + replay trajectories per round. Times: median over the timed rounds "
             "after warm-up; the split (mean CPU ms per round) wraps the trainer's rollout, update and gradient-step "
             "methods: rollout = forward + backward (replay) rollouts, loss fwd = re-scoring + TB loss, "
             "backward+Adam = `backward`, clipping, Adam, rest = reward calls, replay buffer, beta draws. Memory: "
             f"{meta['memory_method']}, minus the RSS just before the first round (trainer built), so it counts what "
             "the rounds allocate at their peak (tensors, autograd buffers, allocator caching), not the "
             "interpreter and torch themselves. One-hot input = batch x (L + 1) x L(K + 1) float32 of one re-scoring "
             "pass.", ""]
    tr = results.get("train", {})
    for factor in ("length", "alphabet", "batch"):
        if tr.get(factor):
            lines += [f"## {factor}", ""] + train_table(tr[factor]) + [""]
    if fits:
        lines += ["## Growth exponents (log-log slopes)", "",
                  "Least-squares slope of log(cost) against log(factor) over all points, and over the last three "
                  "points (the asymptotic regime). 1 = linear.", ""] + slope_table(fits) + [""]
    if tr.get("large"):
        r = tr["large"][0]
        sc = r.get("sample_check", {})
        lines += [f"## Large: L = {r['length']}, K = {r['alphabet']} (batch {r['batch']} + {r['replay']})", "",
                  f"{fmt_ms(r['wall_ms']['median'])} ms per round wall (p10-p90 {fmt_ms(r['wall_ms']['p10'])}-"
                  f"{fmt_ms(r['wall_ms']['p90'])}), {fmt_ms(r['cpu_ms']['median'])} ms CPU, over {r['rounds']} rounds "
                  f"after {r['warmup']} warm-up; peak RSS growth {r['rss_growth_mb']:.0f} MB (one-hot input "
                  f"{r['one_hot_mb_per_update']:.0f} MB per update). CPU split: rollout {share(r, 'rollout'):.0%}, "
                  f"loss fwd {share(r, 'loss'):.0%}, backward+Adam {share(r, 'backward'):.0%}, rest "
                  f"{share(r, 'rest'):.0%}. Sampling: `forward_rollout(model, torch.ones(8))` "
                  f"{fmt_ms(sc.get('forward_rollout_8_ms', float('nan')))} ms, `draw_samples(trainer, 1.0, 64)` "
                  f"{fmt_ms(sc.get('draw_samples_64_ms', float('nan')))} ms, checks "
                  f"{'passed' if sc.get('ok') else 'FAILED'} (shapes, tokens in range, finite rewards).", ""]
    if results.get("exact"):
        lines += ["## Exact evaluation", "",
                  "`exact.terminal_distribution(model, task, 2.0)` (median over repeats after one warm-up call) and "
                  "one `exact.exact_metrics` call, untrained logit model, hidden 128. Sequences: prepend-append "
                  "(states = sum of K^n for n <= L); hypergrid: its own MDP (states = objects = height^ndim).", ""]
        lines += exact_table(results["exact"]) + [""]
        lines += ["| series | states | DP CPU slope | last 3 | DP wall slope | RSS growth slope | tensor peak slope |",
                  "|---|---|---|---|---|---|---|"]
        for name, fit in exact_fits.items():
            rng = fit["range_states"]
            lines.append(f"| {name} | {rng[0]:,}-{rng[1]:,} | {fmt(fit['dp_cpu_ms']['slope'])} "
                         f"| {fmt(fit['dp_cpu_ms']['tail_slope'])} | {fmt(fit['dp_wall_ms']['slope'])} "
                         f"| {fmt(fit['rss_growth_mb']['slope'])} | {fmt(fit['tensor_peak_mb']['slope'])} |")
        lines.append("")
    paragraphs = explain(results, fits, exact_fits)
    if paragraphs:
        lines += ["## Where the cost grows faster than linearly, and why", ""]
        for p in paragraphs:
            lines += [p, ""]
    path.write_text("\n".join(lines))


def git_commit() -> str:
    """The repository's HEAD commit, or ``unknown``."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU model name."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    """Run the chosen factors (each setting in a subprocess) and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer settings and rounds (a smoke run of ~1-2 min)")
    ap.add_argument("--factors", nargs="+", default=list(FACTORS), choices=FACTORS)
    ap.add_argument("--rounds", type=int, default=None, help="at most this many timed rounds per setting "
                    "(default 40, quick 5); slow settings run fewer, within --budget")
    ap.add_argument("--warmup", type=int, default=None, help="at most this many warm-up rounds (default 5, quick 2)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed rounds (or exact repeats) per "
                    "setting (default 8, quick 2)")
    ap.add_argument("--out", default="benchmarks/results/scaling", help="output prefix: PREFIX.{json,md,png}")
    ap.add_argument("--report-only", action="store_true", help="rewrite PREFIX.md and PREFIX.png from PREFIX.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    prefix = Path(args.out)
    json_path, md_path, png_path = (prefix.with_name(prefix.name + s) for s in (".json", ".md", ".png"))
    if args.report_only:
        results = json.loads(json_path.read_text())
        write_markdown(results, results["slopes"], results["exact_slopes"], md_path)
        plot(results, png_path)
        print(f"wrote {md_path}, {png_path}")
        return
    plan = QUICK if args.quick else FULL
    rounds = args.rounds or (5 if args.quick else 40)
    warmup = args.warmup or (2 if args.quick else 5)
    budget = args.budget or (2.0 if args.quick else 8.0)
    import torch

    start = time.perf_counter()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "command": " ".join(["python benchmarks/scaling.py", *sys.argv[1:]]),
        "commit": git_commit(), "torch": torch.__version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "cpu": cpu_name(), "loadavg_start": os.getloadavg()[0], "threads": 1,
        "rounds_max": rounds, "warmup_max": warmup, "budget_s": budget, "quick": args.quick}
    results: dict[str, Any] = {"meta": meta, "train": {}, "exact": []}
    cache: dict[str, dict[str, Any]] = {}
    for factor in args.factors:
        for setting in plan[factor]:
            if factor == "exact":
                spec = {"kind": "exact", **setting, "repeats": 3, "budget": budget}
            else:
                spec = {"kind": "train", **setting, "rounds": rounds, "warmup": warmup, "min_warmup": 2,
                        "min_rounds": 3 if args.quick else 5, "budget": budget}
            key = json.dumps(spec, sort_keys=True)
            if key not in cache:
                cache[key] = run_setting(spec, timeout=1800)
            r = cache[key]
            if factor == "exact":
                results["exact"].append(r)
                msg = (f"{r['n_states']:,} states: DP {r['dp_cpu_ms']['median']:.0f} ms CPU" if r.get("enumerable")
                       else f"{r['n_states']:,} states: not enumerable")
            else:
                results["train"].setdefault(factor, []).append(r)
                msg = (f"L={r['length']} K={r['alphabet']} B={r['batch']}: {r['wall_ms']['median']:.1f} ms wall, "
                       f"{r['cpu_ms']['median']:.1f} ms CPU/round, +{r['rss_growth_mb']:.0f} MB")
            print(f"[{time.perf_counter() - start:6.0f} s] {factor}: {msg}", flush=True)
    meta["memory_method"] = next((r["memory_method"] for rs in results["train"].values() for r in rs),
                                 next((r.get("memory_method") for r in results["exact"] if r.get("memory_method")),
                                      "peak RSS"))
    fits = {f: fit_factor(rows, X_OF[f]) for f, rows in results["train"].items() if f in X_OF and len(rows) > 1}
    exact_fits = fit_exact(results["exact"]) if results["exact"] else {}
    results["slopes"] = fits
    results["exact_slopes"] = exact_fits
    meta["loadavg_end"] = os.getloadavg()[0]
    meta["seconds"] = time.perf_counter() - start
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2))
    write_markdown(results, fits, exact_fits, md_path)
    plot(results, png_path)
    print("\n".join(slope_table(fits)) if fits else "")
    print(f"\n{meta['seconds']:.0f} s; load average {meta['loadavg_start']:.2f} -> {meta['loadavg_end']:.2f}; "
          f"wrote {json_path}, {md_path}, {png_path}")


if __name__ == "__main__":
    main()
