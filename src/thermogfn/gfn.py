"""The GFlowNet trainer (PAPER.md section 5): online mode seeking with reward-prioritised replay, or offline
training from a dataset; one round is an on-policy batch plus a replayed batch with fresh betas."""

from __future__ import annotations

from typing import Any

import torch

from thermogfn.config import RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.flat import FlatParameters
from thermogfn.kernels import Candidates, Paths, Reward, back_and_forth_step, greedy_step, step_log_probs
from thermogfn.mdp import MDP, task_mdp
from thermogfn.objectives import trajectory_loss
from thermogfn.offline_data import bottom_half, read_offline_data
from thermogfn.policy import GFlowNetModel
from thermogfn.priors import BetaPrior
from thermogfn.replay import ReplayBuffer
from thermogfn.sampling import Trajectories, backward_rollout, forward_rollout
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer, RoundStats


def build_model(cfg: RunConfig, task: Task) -> GFlowNetModel:
    """The model a resolved config describes, initialised from the config's seed."""
    mdp: MDP = task_mdp(cfg.mdp, task)
    lo1, hi1 = cfg.train_prior.support()
    lo2, hi2 = cfg.explore_prior.support()
    torch.manual_seed(cfg.seed)
    return GFlowNetModel(mdp, cfg.model, (min(lo1, lo2), max(hi1, hi2)), with_flow=cfg.objective != "tb")


def torch_device(name: str) -> torch.device:
    """The device ``--device`` names: ``auto`` is CUDA where torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ThermoGFNError("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False; a "
                             "CPU build of torch, or no driver); use --device cpu or auto")
    return torch.device(name)


class GFlowNetTrainer(BaseTrainer):
    """A GFlowNet run: model, optimiser, beta priors and reward-prioritised replay (PAPER.md section 5)."""

    def __init__(self, cfg: RunConfig, task: Task | None = None):
        super().__init__(cfg, task)
        self.device = torch_device(self.cfg.device)
        if self.device.type != "cpu" and self.cfg.local_search:
            raise ThermoGFNError(f"--local-search runs on the CPU; drop it or use --device cpu (not {self.device})")
        self.model = build_model(self.cfg, self.task).to(self.device)
        self.model.mdp.to(self.device)
        # rollout noise is drawn on the model's device: on the CPU the run's one generator (results do not change)
        self.rollout_generator = (self.generator if self.device.type == "cpu"
                                  else torch.Generator(self.device).manual_seed(self.cfg.seed))
        self.train_prior: BetaPrior = self.cfg.train_prior
        self.explore_prior: BetaPrior = self.cfg.explore_prior
        self.drawn_beta_mean = float("nan")  # mean beta of the last round's on-policy (or offline) batch
        # two flat tensors (policy, log Z) for zeroing, clipping and a fused Adam: thermogfn.flat
        self.flat = FlatParameters([self.model.policy_parameters(), list(self.model.log_z.parameters())])
        self.optimizer = torch.optim.Adam([{"params": [flat], "lr": lr} for flat, lr in
                                           zip(self.flat.tensors, (self.cfg.lr, self.cfg.lr_logz), strict=False)],
                                          fused=True)
        self.buffer = ReplayBuffer(self.task.length)
        self.compiled = None
        if self.cfg.compile:
            from thermogfn.compiled import CompiledRound  # imports nothing of torch.compile's until asked

            self.compiled = CompiledRound()
        self.offline_x: torch.Tensor | None = None
        self.offline_logr: torch.Tensor | None = None
        if self.cfg.offline:
            x, raw = (read_offline_data(self.cfg.offline_data, self.task) if self.cfg.offline_data
                      else bottom_half(self.task))
            self.offline_x, self.offline_logr = x, self.task.shaping.log_reward(raw)
            self._set_log_z_ceiling(float(self.offline_logr.max()))  # the data's best, not the hidden task's
        else:
            self._set_log_z_ceiling(self.task.log_reward_bound())

    def _set_log_z_ceiling(self, best: float | None) -> None:
        """Raise m of log Z(beta) to ``best``, a log-reward some object attains (the task's maximum in online
        training, the dataset's offline, else the best seen so far)."""
        set_ceiling = getattr(self.model.log_z, "set_ceiling", None)
        if set_ceiling is not None and best is not None and best > float(self.model.log_z.ceiling):
            set_ceiling(best)

    def _update(self, traj: Trajectories, log_reward: torch.Tensor) -> float:
        log_reward = log_reward.to(self.device)
        value = trajectory_loss(self.model, traj, log_reward, self.cfg.objective, self.cfg.subtb_lambda)
        return self.gradient_step(value, self.optimizer, self.flat.tensors, self.flat.zero_grad)

    def _forward_rollout(self, beta: torch.Tensor, eps: float) -> Trajectories:
        compiled = self.compiled
        return forward_rollout(self.model, beta.to(self.device), eps, self.rollout_generator,
                               compiled.forward_steps if compiled else None, compiled.chunk if compiled else None)

    def _backward_rollout(self, x: torch.Tensor, beta: torch.Tensor) -> Trajectories:
        compiled = self.compiled
        return backward_rollout(self.model, x.to(self.device), beta.to(self.device), self.rollout_generator,
                                compiled.backward_steps if compiled else None, compiled.chunk if compiled else None)

    def _replay(self, x: torch.Tensor, log_reward: torch.Tensor) -> float:
        beta = self.train_prior.sample(x.shape[0], self.progress, self.generator)
        if self.cfg.offline:
            self.drawn_beta_mean = float(beta.double().mean())
        return self._update(self._backward_rollout(x, beta), log_reward)

    def train_round(self) -> RoundStats:
        """One round: on-policy batch + one replay batch (online), or one dataset batch (offline)."""
        cfg = self.cfg
        if cfg.offline:
            assert self.offline_x is not None and self.offline_logr is not None
            pick = torch.randint(self.offline_x.shape[0], (cfg.batch_size,), generator=self.generator)
            stats = RoundStats(self._replay(self.offline_x[pick], self.offline_logr[pick]), None, None)
        else:
            fresh = cfg.batch_size // (cfg.ls_iterations + 1) if cfg.local_search else cfg.batch_size
            beta = self.explore_prior.sample(fresh, self.progress, self.generator)
            self.drawn_beta_mean = float(beta.double().mean())
            traj = self._forward_rollout(beta, cfg.eps)
            raw, index = self.evaluate_samples(traj.objects.cpu())  # rewards are computed on the CPU
            seen = [(traj.objects.cpu(), raw, index)]
            if cfg.local_search:
                traj, raw = self._local_search(traj, raw, seen)
            objects, raw_seen, index = (torch.cat(parts) for parts in zip(*seen, strict=True))
            log_reward = self.task.shaping.log_reward(raw_seen)
            if self.task.log_reward_bound() is None:
                self._set_log_z_ceiling(float(log_reward.max()))
            on_policy = self._update(traj, self.task.shaping.log_reward(raw))
            self.buffer.add(objects, log_reward, index)
            replay = None
            if cfg.replay_batch > 0:
                x, logr = self.buffer.sample(cfg.replay_batch, cfg.replay_top_fraction, self.generator)
                replay = self._replay(x, logr)
            stats = RoundStats(on_policy, replay, float(raw_seen.mean()))  # over every object evaluated this round
        self.step += 1
        return stats

    def _local_search(self, traj: Trajectories, raw: torch.Tensor,
                      seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[Trajectories, torch.Tensor]:
        """LS-GFN (arXiv 2310.02710): refine each fresh trajectory ``ls_iterations`` times by going back
        ``local_search`` steps with P_B and forward with P_F, keeping a candidate greedily (reward not lower) or by
        Metropolis-Hastings. Every candidate is a reward call (appended to ``seen``). Returns the fresh and the
        refined trajectories with their raw rewards."""
        def score(x: torch.Tensor) -> torch.Tensor:
            cand_raw, cand_index = self.evaluate_samples(x)
            seen.append((x, cand_raw, cand_index))
            return cand_raw

        reward = Reward(score, self.task.shaping)
        k, log_reward = self.cfg.local_search, self.task.shaping.log_reward(raw)
        if self.cfg.ls_accept == "greedy":
            cur = Candidates(traj, raw, log_reward)
            for _ in range(self.cfg.ls_iterations):
                cur = greedy_step(self.model, cur, reward, k, self.generator)[0]
            refined, refined_raw = cur.traj, cur.raw_reward
        else:
            paths = Paths(traj, raw, log_reward, *step_log_probs(self.model, traj))
            for _ in range(self.cfg.ls_iterations):
                paths = back_and_forth_step(self.model, paths, reward, k, self.generator).paths
            refined, refined_raw = paths.traj, paths.raw_reward
        return Trajectories.cat([traj, refined]), torch.cat([raw, refined_raw])

    def method_metrics(self) -> dict[str, Any]:
        """log Z at the training prior's mean beta, that beta, and the mean of the betas drawn this round."""
        beta = torch.tensor([self.train_prior.mean(self.progress)], device=self.device)
        with torch.no_grad():
            return {"log_z": float(self.model.log_z(beta)), "beta_prior_mean": float(beta),
                    "beta_drawn_mean": self.drawn_beta_mean}

    def method_state(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "buffer": self.buffer.state_dict()}
        if self.rollout_generator is not self.generator:
            state["rollout_generator"] = self.rollout_generator.get_state()
        return state

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(self.flat.flatten_optimizer_state(state["optimizer"]))
        if self.rollout_generator is not self.generator and "rollout_generator" in state:
            self.rollout_generator.set_state(state["rollout_generator"])
        buf = state["buffer"]
        self.buffer.load_state_dict(buf, self.task.object_keys(buf["x"]))
