"""The ground floor: typed run and model configs, the allowed values of every option, and resolution of a config
against its task (defaults filled in, numbers checked). Imports no torch, so the CLI answers ``--help`` at once."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from thermogfn.errors import ThermoGFNError
from thermogfn.priors import BetaPrior, parse_beta_prior

if TYPE_CHECKING:
    from thermogfn.tasks.base import Task

T = TypeVar("T")

# ---------------------------------------------------------------------------------------- allowed values
TASKS: tuple[str, ...] = ("tfbind8", "qm9str", "sehstr", "sehfrag", "hypergrid", "rna1", "rna2", "rna3")
CONDITIONINGS: tuple[str, ...] = ("none", "layer", "logit", "logit+layer")
ARCHITECTURES: tuple[str, ...] = ("mlp", "transformer", "conv", "graph")  # the policy's trunk (thermogfn.networks)
GRAPH_MDPS: tuple[str, ...] = ("fragments",)  # the MDPs whose states are block graphs (the graph trunk's input)
TRANSFORMER_HEADS = 4  # attention heads of the transformer trunk (--hidden must be a multiple)
MDP_KINDS: tuple[str, ...] = ("prepend-append", "append", "hypergrid", "fragments")
OBJECTIVES: tuple[str, ...] = ("tb", "db", "subtb")
G_KINDS: tuple[str, ...] = ("positive", "signed")
BETA_INPUTS: tuple[str, ...] = ("log", "raw")
LAYER_ENCODINGS: tuple[str, ...] = ("value", "thermometer")
LS_ACCEPTS: tuple[str, ...] = ("greedy", "mh")
KERNELS: tuple[str, ...] = ("independent", "back-and-forth", "mixture")  # corrected sampling
CORRECTIONS: tuple[str, ...] = ("none", "mh")
EXECUTORS: tuple[str, ...] = ("local", "processes", "ray")  # where rewards are computed (thermogfn.executors)
GRID_EXECUTORS: tuple[str, ...] = ("local", "ray")  # where the runs of a bench grid train (thermogfn.bench.runs)
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")  # auto: cuda where torch sees one, else cpu
HYPERGRID_DEFAULTS = {"ndim": 4, "height": 8, "r0": 1e-3, "r1": 0.5, "r2": 2.0}  # --ndim, --height, --r0..
THREADS_ENV = "THERMOGFN_THREADS"  # torch intra-op threads for training and evaluation (default 1)

def torch_thread_count() -> int:
    """Intra-op threads to give torch: ``$THERMOGFN_THREADS``, default 1 (on small CPUs more threads cost more than
    they give: benchmarks/README.md)."""
    return int(os.environ.get(THREADS_ENV, "1"))


# what identifies a run's outcome: a checkpoint written under another value of these is refused on resume
# (a run resumed on another device continues, but is not bit-identical to one that stayed)
IDENTITY_EXCLUDES = ("steps", "data_dir", "log_every", "checkpoint_every", "max_consecutive_skips", "device",
                     "executor", "ray_address", "executor_workers")  # executors give the same rewards


@dataclass
class ModelConfig:
    """Architecture of the model (part of the run config)."""

    conditioning: str | None = None  # default: the task's (logit on the paper's tasks, logit+layer elsewhere)
    hidden: int | None = None  # default: the task's; the width of every architecture
    layers: int = 2  # MLP: hidden layers before its last (feature) layer; transformer: blocks; conv: conv layers;
    # graph: message-passing rounds
    architecture: str | None = None  # the trunk, one of ARCHITECTURES; default: the task's (mlp on every task)
    learn_pb: bool = False
    g_kind: str = "positive"
    beta_input: str = "log"
    layer_encoding: str = "value"
    logit_clip: float = 20.0


@dataclass
class RunConfig:
    """Everything a training run needs. ``None`` fields take the task's defaults (see :func:`resolve`)."""

    task: str = "tfbind8"
    method: str = "gfn"  # gfn, or a baseline (thermogfn.methods.METHODS)
    method_params: dict[str, Any] = field(default_factory=dict)  # a baseline's hyper-parameters, by name
    data_dir: str | None = None  # resolved to the task's data folder (None for tasks without data)
    alphabet: str | None = None  # custom tasks
    length: int | None = None  # custom tasks
    min_length: int | None = None  # custom and RNA tasks: objects of every length min_length..length (None: fixed)
    reward_min: float | None = None  # custom tasks: floor raw rewards at this value (default: reject <= 0)
    reward_timeout: float | None = None  # custom tasks: seconds one call of the reward function may take
    ndim: int | None = None  # hypergrid (default 4)
    height: int | None = None  # hypergrid (default 8)
    r0: float | None = None  # hypergrid reward R0 + R1 * outer + R2 * band (HYPERGRID_DEFAULTS)
    r1: float | None = None
    r2: float | None = None
    mdp: str | None = None  # prepend-append for sequences, hypergrid for the hypergrid
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: str = "tb"
    subtb_lambda: float = 0.9
    beta_train: str = "uniform:1:3"
    beta_explore: str | None = None  # default: the training prior
    steps: int | None = None  # training rounds
    batch_size: int = 32  # on-policy trajectories per round
    replay_batch: int = 32  # replayed trajectories per round (0: on-policy only)
    replay_top_fraction: float = 0.1
    local_search: int = 0  # LS-GFN: back-and-forth steps K per refinement (0: no local search)
    ls_iterations: int = 7  # refinements per fresh trajectory; a round draws batch_size / (ls_iterations + 1) fresh
    ls_accept: str = "greedy"  # keep a candidate if its reward is not lower (greedy) or by Metropolis-Hastings (mh)
    eps: float | None = None
    lr: float | None = None
    lr_logz: float = 1e-2
    grad_clip: float = 10.0
    compile: bool = False  # torch.compile the rollout steps (thermogfn.compiled)
    device: str = "cpu"  # where the GFlowNet trains (DEVICES); rewards are computed on the CPU
    executor: str = "local"  # where rewards are computed: EXECUTORS (thermogfn.executors)
    ray_address: str | None = None  # --executor ray: the cluster's HOST:PORT (None: a local Ray for the run)
    executor_workers: int | None = None  # processes / ray: workers (None: the CPU count)
    max_consecutive_skips: int = 20  # stop (with a checkpoint) after this many non-finite steps in a row
    seed: int = 0
    offline: bool = False
    offline_data: str | None = None  # CSV of sequence,reward; default: bottom half of the task's table
    log_every: int = 10
    checkpoint_every: int = 100

    @property
    def train_prior(self) -> BetaPrior:
        return parse_beta_prior(self.beta_train)

    @property
    def explore_prior(self) -> BetaPrior:
        return parse_beta_prior(self.beta_explore or self.beta_train)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        """A config from its JSON form; wrong keys or value types raise ThermoGFNError."""
        data = _checked_fields(cls, data, "run config")
        model = ModelConfig(**_checked_fields(ModelConfig, data.pop("model", {}), "model config"))
        return cls(model=model, **data)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a checkpoint to be resumed under this config."""
        d = self.to_dict()
        excluded = IDENTITY_EXCLUDES if self.task == "hypergrid" else IDENTITY_EXCLUDES + tuple(HYPERGRID_DEFAULTS)
        for key in excluded:
            d.pop(key, None)
        if d["model"]["architecture"] is None:  # a checkpoint from before --architecture: the MLP was the only one
            d["model"]["architecture"] = "mlp"
        return d


def _checked_fields(cls: type, data: Any, what: str) -> dict[str, Any]:
    """``data`` as keyword arguments of dataclass ``cls``, every value of its declared type."""
    if not isinstance(data, dict):
        raise ThermoGFNError(f"the {what} is a JSON {type(data).__name__}, not an object")
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise ThermoGFNError(f"unknown {what} keys {sorted(unknown)}; it is from another version")
    for key, value in data.items():
        allowed = typing.get_args(hints[key]) or (hints[key],)
        if hints[key] is ModelConfig:
            continue
        if typing.get_origin(hints[key]) is dict:
            if not isinstance(value, dict):
                raise ThermoGFNError(f"{what} field {key!r} is {value!r}, not an object")
            continue
        ok = any(value is None if t is type(None) else
                 isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
                 or (t is float and isinstance(value, int) and not isinstance(value, bool)) for t in allowed)
        if not ok:
            raise ThermoGFNError(f"{what} field {key!r} is {value!r}, not of type {hints[key]}")
    return dict(data)


def build_params(cls: type[T], values: dict[str, Any], method: str) -> T:
    """A method's hyper-parameter dataclass from ``--method-param`` values, checked by name and type."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ThermoGFNError(f"method {method} has no parameter(s) {', '.join(unknown)}; it takes "
                             f"{', '.join(hints)}")
    checked = {}
    for key, value in values.items():
        want = hints[key]
        if float in (want, *typing.get_args(want)) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ThermoGFNError(f"--method-param {key}={value!r} must be of type {getattr(want, '__name__', want)}")
        checked[key] = value
    return cls(**checked)


# ---------------------------------------------------------------------------------------- resolution
def check_hypergrid_options(cfg: RunConfig, task_name: str) -> None:
    """A one-line error if ``cfg`` sets a hypergrid option (--ndim, --height, --r0..) for another task; checked
    before a task's data is loaded, and again in :func:`resolve` for task objects."""
    given = [f"--{key}" for key in HYPERGRID_DEFAULTS if getattr(cfg, key) is not None]
    if task_name != "hypergrid" and given:
        verb = "applies" if len(given) == 1 else "apply"
        raise ThermoGFNError(f"{'/'.join(given)} {verb} to the hypergrid, not to task {task_name}")


def resolve(cfg: RunConfig, task: Task) -> RunConfig:
    """Fill ``None`` fields with the task's defaults and check the combination; returns a new config."""
    d = task.defaults
    default_trunk = d.architecture if cfg.method == "gfn" else "mlp"  # the baselines have their own MLPs
    model = dataclasses.replace(cfg.model, hidden=cfg.model.hidden if cfg.model.hidden is not None else d.hidden,
                                conditioning=cfg.model.conditioning or d.conditioning,
                                architecture=cfg.model.architecture or default_trunk)
    data_path = getattr(task, "data_path", None)
    spec, sep, function = cfg.task.rpartition(":")
    if sep and spec.endswith(".py"):  # a reward file: remember where it is, so the run loads from any folder
        cfg = dataclasses.replace(cfg, task=f"{Path(spec).expanduser().resolve()}:{function}")
    grid = ({key: getattr(task, key) for key in HYPERGRID_DEFAULTS} if task.name == "hypergrid"
            else dict.fromkeys(HYPERGRID_DEFAULTS))
    if cfg.min_length is not None and cfg.min_length != task.min_length:
        raise ThermoGFNError(f"--min-length {cfg.min_length} does not match the task object's min_length "
                             f"{task.min_length}; build the task with min_length={cfg.min_length}")
    out = dataclasses.replace(
        cfg, model=model, mdp=cfg.mdp or task.mdp_kinds[0], steps=cfg.steps if cfg.steps is not None else d.rounds,
        eps=cfg.eps if cfg.eps is not None else d.eps, lr=cfg.lr if cfg.lr is not None else d.lr,
        beta_explore=cfg.beta_explore or cfg.beta_train,
        data_dir=str(data_path) if data_path is not None else cfg.data_dir,
        min_length=task.min_length if task.variable_length else None, **grid)  # None: one length
    if out.mdp not in task.mdp_kinds:
        raise ThermoGFNError(f"task {task.name} uses MDP {' or '.join(task.mdp_kinds)}, not {out.mdp!r}")
    _check_choice("objective", out.objective, OBJECTIVES)
    _check_choice("conditioning", model.conditioning, CONDITIONINGS)
    _check_choice("architecture", model.architecture, ARCHITECTURES)
    if (model.architecture == "graph") != (out.mdp in GRAPH_MDPS) and model.architecture != "mlp":
        raise ThermoGFNError(f"--architecture {model.architecture} does not read the {out.mdp} MDP's states: graph "
                             f"reads {', '.join(GRAPH_MDPS)} states, transformer and conv sequences; use mlp")
    if model.architecture != "mlp" and out.mdp == "hypergrid":
        raise ThermoGFNError(f"--architecture {model.architecture} reads the tokens of a sequence; the hypergrid's "
                             "states are coordinates: use --architecture mlp")
    if cfg.model.architecture not in (None, "mlp") and out.method != "gfn":
        raise ThermoGFNError(f"--architecture sets the GFlowNet's policy; the {out.method} baseline uses its own MLP")
    if model.architecture == "transformer" and model.hidden % TRANSFORMER_HEADS:
        raise ThermoGFNError(f"--hidden must be a multiple of {TRANSFORMER_HEADS} (the transformer's heads), got "
                             f"{model.hidden}")
    _check_choice("g", model.g_kind, G_KINDS)
    _check_choice("beta input", model.beta_input, BETA_INPUTS)
    _check_choice("layer encoding", model.layer_encoding, LAYER_ENCODINGS)
    _check_choice("local-search acceptance", out.ls_accept, LS_ACCEPTS)
    _check_choice("device", out.device, DEVICES)
    _check_choice("executor", out.executor, EXECUTORS)
    if out.executor_workers is not None and out.executor_workers < 1:
        raise ThermoGFNError(f"--workers must be >= 1, got {out.executor_workers}")
    if out.ray_address is not None and out.executor != "ray":
        raise ThermoGFNError(f"--ray-address applies with --executor ray, not {out.executor}")
    if out.executor_workers is not None and out.executor == "local":
        raise ThermoGFNError("--workers applies with --executor processes or ray; the local executor runs in process")
    if out.device != "cpu" and out.method != "gfn":
        raise ThermoGFNError(f"--device {out.device} trains GFlowNets; the {out.method} baseline runs on the CPU")
    check_hypergrid_options(cfg, task.name)
    if out.method == "gfn" and out.method_params:
        raise ThermoGFNError("--method-param sets a baseline's hyper-parameters; the GFlowNet (--method gfn) takes "
                             "none (use its own options, e.g. --lr)")
    if out.local_search and out.offline:
        raise ThermoGFNError("--local-search spends reward calls; offline training (--offline) makes none")
    if out.compile and out.method != "gfn":
        raise ThermoGFNError(f"--compile speeds up GFlowNet training; the {out.method} baseline does not use it")
    if out.local_search and out.method != "gfn":
        raise ThermoGFNError(f"--local-search trains GFlowNets; the {out.method} baseline has none")
    if not out.local_search and (out.ls_iterations, out.ls_accept) != (RunConfig.ls_iterations, RunConfig.ls_accept):
        raise ThermoGFNError("--ls-iterations and --ls-accept apply with local search: add --local-search K")
    for prior in (out.train_prior, out.explore_prior):
        if model.conditioning == "none" and prior.kind != "constant":
            raise ThermoGFNError(f"conditioning 'none' trains a plain GFlowNet at one fixed beta; "
                                 f"use constant priors (e.g. --beta-train constant:1), not {str(prior)!r}")
    _check_numbers(out)
    return out


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ThermoGFNError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


def _check_numbers(cfg: RunConfig) -> None:
    """One-line errors for numeric settings outside their sensible range."""
    checks = [
        ("--steps", cfg.steps, cfg.steps >= 1, ">= 1"),
        ("--batch-size", cfg.batch_size, cfg.batch_size >= 1, ">= 1"),
        ("--replay-batch", cfg.replay_batch, cfg.replay_batch >= 0, ">= 0"),
        ("--eps", cfg.eps, 0 <= cfg.eps <= 1, "in [0, 1]"),
        ("--lr", cfg.lr, math.isfinite(cfg.lr) and cfg.lr > 0, "a positive finite number"),
        ("--lr-logz", cfg.lr_logz, math.isfinite(cfg.lr_logz) and cfg.lr_logz > 0, "a positive finite number"),
        ("--grad-clip", cfg.grad_clip, cfg.grad_clip > 0, "> 0"),
        ("--subtb-lambda", cfg.subtb_lambda, math.isfinite(cfg.subtb_lambda) and cfg.subtb_lambda > 0, "> 0"),
        ("--hidden", cfg.model.hidden, 1 <= cfg.model.hidden <= 65536, "in 1..65536"),
        ("--layers", cfg.model.layers, 1 <= cfg.model.layers <= 64, "in 1..64"),
        ("--log-every", cfg.log_every, cfg.log_every >= 1, ">= 1"),
        ("--checkpoint-every", cfg.checkpoint_every, cfg.checkpoint_every >= 1, ">= 1"),
        ("--max-consecutive-skips", cfg.max_consecutive_skips, cfg.max_consecutive_skips >= 1, ">= 1"),
        ("--seed", cfg.seed, 0 <= cfg.seed < 2**63, "in 0..2^63-1"),
        ("--replay-top-fraction", cfg.replay_top_fraction, 0 < cfg.replay_top_fraction <= 1, "in (0, 1]"),
        ("--local-search", cfg.local_search, cfg.local_search >= 0, ">= 0"),
        ("--ls-iterations", cfg.ls_iterations, cfg.ls_iterations >= 1, ">= 1"),
    ]
    for flag, value, ok, rule in checks:
        if not ok:
            raise ThermoGFNError(f"{flag} must be {rule}, got {value}")
    if cfg.local_search and cfg.batch_size % (cfg.ls_iterations + 1):
        fits = [i for i in range(1, cfg.batch_size) if cfg.batch_size % (i + 1) == 0]
        raise ThermoGFNError(f"with local search a round spends --batch-size reward calls on --batch-size / "
                             f"(--ls-iterations + 1) fresh objects and their refinements: --batch-size "
                             f"{cfg.batch_size} is not a multiple of {cfg.ls_iterations + 1}; --ls-iterations "
                             f"{', '.join(map(str, fits)) or '(none: use a larger --batch-size)'} fit")
