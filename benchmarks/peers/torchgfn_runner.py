"""One torchgfn 2.4.1 run of the HyperGrid setting (run by benchmarks/peers/run.py inside the torchgfn venv).

The training loop is the one of torchgfn's tutorials/examples/train_hypergrid_simple.py, written against its
public API: ``HyperGrid`` (original reward), ``KHotPreprocessor``, ``MLP`` for P_F and an ``MLP`` for P_B on the
same trunk, ``TBGFlowNet`` (log Z initialised at 0), Adam with a log Z group, ``Sampler.sample_trajectories``
without saved log-probs, ``loss_from_trajectories(recalculate_all_logprobs=False)``, gradient clipping. The
exact TV is a DP over the 4,096 states with the learned P_F (stop included). Prints one ``PEER_RESULT`` line.
"""

from __future__ import annotations

import platform
from importlib.metadata import version
from typing import Any

from _common import SETTINGS, Clock, emit, parser, steady


def exact_terminal(env: Any, pf: Any, ndim: int, height: int) -> Any:
    """P(x) of every grid point (canonical index order) under the forward policy, by DP over the levels."""
    import torch

    states = env.all_states
    with torch.no_grad():
        probs = pf.to_probability_distribution(states, pf(states)).probs.double().reshape(-1, ndim + 1)
    coords = states.tensor.reshape(-1, ndim)
    index = env.get_states_indices(states).reshape(-1)
    order = torch.empty_like(index)
    order[index] = torch.arange(index.numel())  # row of each canonical index
    strides = height ** torch.arange(ndim - 1, -1, -1)
    level = coords.sum(-1)
    flow = torch.zeros(index.numel(), dtype=torch.float64)
    flow[0] = 1.0  # s0 = the origin, index 0
    terminal = torch.zeros_like(flow)
    for n in range(ndim * (height - 1) + 1):
        rows = torch.nonzero(level == n).reshape(-1)
        idx = index[rows]
        mass = flow[idx]
        terminal[idx] += mass * probs[rows, ndim]
        for d in range(ndim):
            ok = coords[rows, d] < height - 1
            flow.index_add_(0, idx[ok] + strides[d], mass[ok] * probs[rows[ok], d])
    return terminal


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    if args.setting != "hypergrid":
        raise SystemExit("torchgfn runs the hypergrid setting")
    clock = Clock()
    import numpy as np
    import torch
    from gfn.estimators import DiscretePolicyEstimator
    from gfn.gflownet import TBGFlowNet
    from gfn.gym import HyperGrid
    from gfn.preprocessors import KHotPreprocessor
    from gfn.samplers import Sampler
    from gfn.utils.common import set_seed
    from gfn.utils.modules import MLP

    torch.set_num_threads(1)
    import_s = clock.lap()[0]

    s = SETTINGS["hypergrid"]
    set_seed(args.seed)
    # debug=False: the example passes debug=__debug__ (True unless python -O), which adds validation checks
    env = HyperGrid(ndim=s["ndim"], height=s["height"], reward_fn_str="original",
                    reward_fn_kwargs={"R0": s["r0"], "R1": s["r1"], "R2": s["r2"]}, device="cpu",
                    calculate_partition=True, store_all_states=True, debug=False)
    pre = KHotPreprocessor(height=env.height, ndim=env.ndim)
    module_pf = MLP(input_dim=pre.output_dim, output_dim=env.n_actions, hidden_dim=s["hidden"],
                    n_hidden_layers=s["hidden_layers"])
    module_pb = MLP(input_dim=pre.output_dim, output_dim=env.n_actions - 1, trunk=module_pf.trunk)
    pf = DiscretePolicyEstimator(module_pf, env.n_actions, preprocessor=pre, is_backward=False)
    pb = DiscretePolicyEstimator(module_pb, env.n_actions, preprocessor=pre, is_backward=True)
    gflownet = TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)
    optimizer = torch.optim.Adam(gflownet.pf_pb_parameters(), lr=s["lr"])
    optimizer.add_param_group({"params": gflownet.logz_parameters(), "lr": s["lr_logz"]})
    sampler = Sampler(estimator=pf)
    setup_s = clock.lap()[0]

    wall, cpu = [], []
    for _ in range(args.iterations):
        trajectories = sampler.sample_trajectories(env, n=s["batch"], save_logprobs=False,
                                                   save_estimator_outputs=False, epsilon=s["eps"])
        optimizer.zero_grad()
        loss = gflownet.loss_from_trajectories(env, trajectories, recalculate_all_logprobs=False)
        loss.backward()
        gflownet.assert_finite_gradients()
        torch.nn.utils.clip_grad_norm_(gflownet.parameters(), s["grad_clip"])
        optimizer.step()
        gflownet.assert_finite_parameters()
        w, c = clock.lap()
        wall.append(w)
        cpu.append(c)
    train_s = sum(wall)
    stats = steady(wall, cpu, 1, args.warmup)

    p = exact_terminal(env, pf, s["ndim"], s["height"]).numpy()
    own = env.true_dist().double().numpy()
    result: dict[str, Any] = {"tv": 0.5 * float(np.abs(p - own).sum()), "mass": float(p.sum())}
    if args.target is not None:
        target = np.load(args.target)
        result.update(tv_thermogfn_target=0.5 * float(np.abs(p - target).sum()),
                      target_max_abs_diff=float(np.abs(own - target).max()))
    result["log_z_error"] = abs(float(gflownet.logZ.detach()) - float(env.log_partition()))
    eval_s = clock.lap()[0]
    emit({"system": "torchgfn", "setting": args.setting, "seed": args.seed, "iterations": args.iterations,
          "warmup": args.warmup, "batch": s["batch"], **stats, "traj_per_s": s["batch"] / stats["ms_per_iter"] * 1e3,
          "import_s": import_s, "setup_s": setup_s,
          "compile_s": max(0.0, wall[0] - stats["ms_per_iter_median"] / 1e3), "first_iter_s": wall[0],
          "train_s": train_s, "eval_s": eval_s, **result,
          "n_params": sum(q.numel() for q in gflownet.parameters()),
          "versions": {"torchgfn": version("torchgfn"), "torch": torch.__version__, "numpy": np.__version__,
                       "python": platform.python_version()},
          "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
