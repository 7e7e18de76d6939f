"""One gfnx 0.0.1 run of the TFBind8 setting (run by benchmarks/peers/run.py inside the gfnx venv).

The training step is the one of gfnx's baselines/tb_tfbind.py, written against its public API and without its
logging and metrics: ``TFBind8Environment`` (append MDP, no stop action: length 8 is terminal), an equinox MLP
(depth 2, width 256) plus a linear head over the one-hot tokens, ``gfnx.utils.forward_rollout`` with
``apply_epsilon_greedy_vmap`` exploration, the TB loss re-scoring every state of the batch, optax Adam on the
network and on log Z (initialised at 0), all jitted; ``--chunk`` steps run in one ``lax.fori_loop`` as in the
baseline. Compilation is timed on its own (ahead-of-time lower + compile). The exact TV is the product of P_F
along each sequence's unique path (the append MDP is a tree). Prints one ``PEER_RESULT`` line.

gfnx reads its reward table from ``proxy/weights/tfbind/tfbind8-exact-v0-all.pkl`` relative to the working
directory, a file its wheel does not ship (design-bench's TFBind8-Exact table: ``x`` (N, 8) tokens, ``y``
(N, 1) scores). This runner writes it from ``--table`` (the 65,536 scores in object-index order) under
``--workdir`` and runs from there.
"""

from __future__ import annotations

import itertools
import math
import os
import pickle
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import SETTINGS, Clock, emit, parser, single_thread, steady

REWARD_PICKLE = Path("proxy/weights/tfbind/tfbind8-exact-v0-all.pkl")


def write_reward_pickle(workdir: Path, table: Path, nchar: int = 4, length: int = 8) -> None:
    """The TFBind8 table in the format gfnx's ``TFBind8RewardModule.init`` loads."""
    import numpy as np

    y = np.load(table).astype(np.float32).reshape(-1, 1)
    x = np.array(list(itertools.product(range(nchar), repeat=length)), dtype=np.int32)  # row i: digits of i
    if y.shape[0] != x.shape[0]:
        raise SystemExit(f"{table} has {y.shape[0]} scores, expected {x.shape[0]}")
    path = workdir / REWARD_PICKLE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump({"x": x, "y": y}, fh)
    tmp.replace(path)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, required=True, help="TFBind8 scores y (65,536, object-index order), .npy")
    p.add_argument("--chunk", type=int, default=25, help="training steps per jitted lax.fori_loop call")
    args = p.parse_args()
    if args.setting != "tfbind8":
        raise SystemExit("gfnx runs the tfbind8 setting")
    single_thread()
    clock = Clock()
    import equinox as eqx
    import gfnx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import_s = clock.lap()[0]

    workdir = (args.workdir or Path.cwd()).resolve()
    table, target_path = args.table.resolve(), args.target.resolve() if args.target else None
    write_reward_pickle(workdir, table)
    os.chdir(workdir)
    clock.lap()  # writing the table is this benchmark's doing, not gfnx's set-up

    s = SETTINGS["tfbind8"]
    batch, eps = s["batch"], s["eps"]
    chunk = math.gcd(args.iterations, args.chunk)
    key, env_key, net_key = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    env = gfnx.TFBind8Environment(gfnx.TFBind8RewardModule(min_reward=s["min_reward"]))
    env_params = env.init(env_key)

    class Policy(eqx.Module):
        """Forward logits from the one-hot tokens (padding encodes as zeros, as in the baseline)."""

        trunk: eqx.nn.MLP
        head: eqx.nn.Linear
        classes: int = eqx.field(static=True)

        def __init__(self, key: Any) -> None:
            k1, k2 = jax.random.split(key)
            self.classes = env.nchar + 1
            self.trunk = eqx.nn.MLP(in_size=env.max_length * self.classes, out_size=s["hidden"],
                                    width_size=s["hidden"], depth=s["linear_256"] - 1, key=k1)
            self.head = eqx.nn.Linear(s["hidden"], env.action_space.n, key=k2)

        def __call__(self, obs: Any) -> Any:
            return self.head(self.trunk(jax.nn.one_hot(obs[1:], self.classes).reshape(-1)))

    net, static = eqx.partition(Policy(net_key), eqx.is_array)
    trainable = {"net": net, "log_z": jnp.array(0.0)}
    labels = {"net": jax.tree.map(lambda _: "net", net), "log_z": "log_z"}
    optimizer = optax.multi_transform({"net": optax.adam(s["lr"]), "log_z": optax.adam(s["lr_logz"])}, labels)
    opt_state = optimizer.init(trainable)

    def policy_fn(rng: Any, obs: Any, params: Any) -> tuple[Any, dict]:
        logits = jax.vmap(eqx.combine(params, static))(obs)
        return gfnx.utils.apply_epsilon_greedy_vmap(rng, logits, eps), {}

    def loss_fn(params: dict, traj: Any, env_params: Any) -> Any:
        logits = jax.vmap(jax.vmap(eqx.combine(params["net"], static)))(traj.obs)
        invalid = jax.vmap(env.get_invalid_mask, in_axes=(1, None), out_axes=1)(traj.state, env_params)
        log_p = jax.nn.log_softmax(gfnx.utils.mask_logits(logits, invalid), axis=-1)
        taken = jnp.take_along_axis(log_p, traj.action[..., None], axis=-1).squeeze(-1)
        log_pf = jnp.where(traj.pad, 0.0, taken).sum(1)
        log_r = jnp.where(traj.pad, 0.0, traj.log_gfn_reward).sum(1)
        return jnp.mean((params["log_z"] + log_pf - log_r) ** 2)  # log P_B = 0: one parent per state

    def run_chunk(carry: tuple, env_params: Any) -> tuple:
        def step(_: Any, carry: tuple) -> tuple:
            params, opt_state, rng = carry
            rng, roll = jax.random.split(rng)
            traj, _ = gfnx.utils.forward_rollout(roll, batch, policy_fn, params["net"], env, env_params)
            grads = jax.grad(loss_fn)(params, traj, env_params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, rng

        return jax.lax.fori_loop(0, chunk, step, carry)

    carry = jax.block_until_ready((trainable, opt_state, key))
    setup_s = clock.lap()[0]
    compiled = jax.jit(run_chunk, donate_argnums=0).lower(carry, env_params).compile()
    compile_s = clock.lap()[0]

    wall, cpu = [], []
    for _ in range(args.iterations // chunk):
        carry = jax.block_until_ready(compiled(carry, env_params))
        w, c = clock.lap()
        wall.append(w)
        cpu.append(c)
    train_s = sum(wall)
    stats = steady(wall, cpu, chunk, -(-args.warmup // chunk))

    params = carry[0]
    model = eqx.combine(params["net"], static)
    apply = jax.jit(jax.vmap(model))
    log_p = np.zeros(1)
    for n in range(env.max_length):  # level n: every prefix of length n, lexicographic
        tokens = np.full((env.nchar**n, env.max_length), env.pad_token, dtype=np.int32)
        if n:
            tokens[:, :n] = np.array(list(itertools.product(range(env.nchar), repeat=n)))
        state = env.get_init_state(tokens.shape[0]).replace(tokens=jnp.asarray(tokens),
                                                            is_initial=jnp.full(tokens.shape[0], n == 0))
        logits = gfnx.utils.mask_logits(apply(env.get_obs(state, env_params)), env.get_invalid_mask(state, env_params))
        lp = np.asarray(jax.nn.log_softmax(logits, axis=-1), dtype=np.float64)
        log_p = (log_p[:, None] + lp).reshape(-1)  # child index = parent index * nchar + token
    prob = np.exp(log_p)
    rewards = np.asarray(env_params.reward_params["rewards"], dtype=np.float64)
    own = rewards / rewards.sum()
    result: dict[str, Any] = {"tv": 0.5 * float(np.abs(prob - own).sum()), "mass": float(prob.sum()),
                              "log_z_error": abs(float(params["log_z"]) - math.log(rewards.sum()))}
    if target_path is not None:
        target = np.load(target_path)
        result.update(tv_thermogfn_target=0.5 * float(np.abs(prob - target).sum()),
                      target_max_abs_diff=float(np.abs(own - target).max()))
    eval_s = clock.lap()[0]
    emit({"system": "gfnx", "setting": args.setting, "seed": args.seed, "iterations": args.iterations,
          "warmup": args.warmup, "batch": batch, "chunk": chunk, **stats,
          "traj_per_s": batch / stats["ms_per_iter"] * 1e3, "import_s": import_s, "setup_s": setup_s,
          "compile_s": compile_s, "first_iter_s": wall[0] / chunk + compile_s, "train_s": train_s,
          "eval_s": eval_s, **result,
          "n_params": sum(int(x.size) for x in jax.tree.leaves(params)),
          "versions": {"gfnx": version("gfnx"), "jax": jax.__version__, "jaxlib": version("jaxlib"),
                       "equinox": version("equinox"), "optax": version("optax"), "numpy": np.__version__,
                       "python": platform.python_version()},
          "xla_flags": os.environ.get("XLA_FLAGS", "")})


if __name__ == "__main__":
    main()
