"""One thermogfn run of a peer-benchmark setting (run by benchmarks/peers/run.py, in thermogfn's environment).

Trains through the public API (``RunConfig``/``ModelConfig``, ``GFlowNetTrainer.train_round``), on-policy only
(``replay_batch=0``, ``conditioning="none"``, ``beta_train="constant:1"``), then takes the exact TV of the
learned terminal distribution to R/Z with ``thermogfn.exact.exact_metrics``. Prints one ``PEER_RESULT`` line.
"""

from __future__ import annotations

import math
import platform
from typing import Any

from _common import SETTINGS, Clock, emit, parser, steady


def build(setting: str, seed: int, iterations: int, compile_round: bool = False) -> tuple[Any, Any]:
    """The trainer and task of ``setting`` with the shared hyper-parameters."""
    from thermogfn.config import ModelConfig, RunConfig
    from thermogfn.gfn import GFlowNetTrainer
    from thermogfn.tasks import make_task
    from thermogfn.tasks.hypergrid import HypergridTask

    s = SETTINGS[setting]
    common = {"objective": "tb", "batch_size": s["batch"], "replay_batch": 0, "beta_train": "constant:1",
              "lr": s["lr"], "lr_logz": s["lr_logz"], "eps": s["eps"], "steps": iterations, "seed": seed,
              "grad_clip": s["grad_clip"] if s["grad_clip"] is not None else math.inf, "compile": compile_round}
    if setting == "hypergrid":
        task = HypergridTask(ndim=s["ndim"], height=s["height"], r0=s["r0"], r1=s["r1"], r2=s["r2"])
        # layers counts the hidden layers before the last feature layer: 1 -> two hidden layers of 256
        model = ModelConfig(conditioning="none", hidden=s["hidden"], layers=s["hidden_layers"] - 1,
                            learn_pb=s["learn_pb"])
        cfg = RunConfig(task="hypergrid", mdp="hypergrid", model=model, **common)
    else:
        task = make_task("tfbind8")
        # layers=2: Linear 40-256-256-256 then the head, the matmuls of gfnx's depth-2 MLP + head; P_B of the
        # append tree is 1 whatever the network says, so it is not learned
        model = ModelConfig(conditioning="none", hidden=s["hidden"], layers=s["linear_256"] - 1, learn_pb=False)
        cfg = RunConfig(task="tfbind8", mdp="append", model=model, **common)
    return GFlowNetTrainer(cfg, task), task


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--compile", action="store_true", help="torch.compile the rollouts and the loss")
    args = p.parse_args()
    clock = Clock()
    import torch

    import thermogfn
    import thermogfn.gfn
    import thermogfn.tasks.hypergrid
    import thermogfn.tasks.tfbind8  # noqa: F401 - imported here so that import_s, not setup_s, counts it
    from thermogfn.exact import exact_metrics

    torch.set_num_threads(1)
    import_s = clock.lap()[0]
    trainer, task = build(args.setting, args.seed, args.iterations, args.compile)
    setup_s = clock.lap()[0]
    wall, cpu = [], []
    for _ in range(args.iterations):
        trainer.train_round()
        w, c = clock.lap()
        wall.append(w)
        cpu.append(c)
    train_s = sum(wall)
    stats = steady(wall, cpu, 1, args.warmup)
    metrics = exact_metrics(trainer.model, task, 1.0)
    eval_s = clock.lap()[0]
    batch = SETTINGS[args.setting]["batch"]
    emit({"system": "thermogfn --compile" if args.compile else "thermogfn", "setting": args.setting, "seed": args.seed,
          "iterations": args.iterations,
          "warmup": args.warmup, "batch": batch, **stats, "traj_per_s": batch / stats["ms_per_iter"] * 1e3,
          "import_s": import_s, "setup_s": setup_s,
          # eager torch: nothing is compiled ahead; the first iteration's excess over the steady median is
          # where a lazy torch.compile would land
          "compile_s": max(0.0, wall[0] - stats["ms_per_iter_median"] / 1e3), "first_iter_s": wall[0],
          "train_s": train_s, "eval_s": eval_s, "tv": metrics["tv"], "log_z_error": metrics["log_z_error"],
          "skipped_steps": trainer.skipped,
          "n_params": sum(p.numel() for p in trainer.model.parameters()),
          "versions": {"thermogfn": thermogfn.__version__, "torch": torch.__version__,
                       "python": platform.python_version()},
          "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
