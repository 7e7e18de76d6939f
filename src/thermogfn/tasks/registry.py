"""Build a task from its name (one of ``TASKS``: ``tfbind8``, ``qm9str``, ``sehstr``, ...) or a custom spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thermogfn.config import HYPERGRID_DEFAULTS, TASKS, RunConfig, check_hypergrid_options
from thermogfn.errors import ThermoGFNError

if TYPE_CHECKING:
    from thermogfn.tasks.base import Task

_TASK_OPTIONS = {"tfbind8": (), "qm9str": (), "sehstr": (), "sehfrag": (),
                 "hypergrid": ("ndim", "height", "r0", "r1", "r2")}
_TASK_OPTIONS.update({f"rna{k}": ("workers",) for k in (1, 2, 3)})
_CUSTOM_OPTIONS = ("exponent", "name", "timeout")
VARIABLE_LENGTH_TASKS = ("rna1", "rna2", "rna3")  # named tasks whose reward scores any length (and custom rewards)


def _check_options(task: str, given: dict, allowed: tuple[str, ...]) -> None:
    extra = sorted(k for k in given if k not in allowed)
    if extra:
        allowed_txt = ", ".join(allowed) or "none"
        raise ThermoGFNError(f"option(s) {', '.join(extra)} do not apply to task {task} "
                             f"(it takes: {allowed_txt})")


def make_task(name_or_spec: str, *, data_dir: str | None = None, alphabet: str | None = None,
              length: int | None = None, reward_min: float | None = None, min_length: int | None = None,
              **kwargs) -> Task:
    """A task by name, or a :class:`CustomTask` for a spec with ``':'`` (needs ``alphabet``, ``length``).

    ``min_length`` (custom rewards and rna1/2/3) allows every length from ``min_length`` to the length; other
    tasks refuse it.

    ``kwargs`` whose value is None are ignored; hypergrid takes ``ndim``, ``height`` (and ``r0``, ``r1``,
    ``r2``), rna1/2/3 take ``workers``; custom specs take ``exponent`` and ``name``.
    """
    opts = {k: v for k, v in kwargs.items() if v is not None}
    spec = str(name_or_spec).strip()
    if ":" in spec:
        from thermogfn.tasks.custom import CustomTask, load_reward_function

        if alphabet is None or length is None:
            flags = (("--alphabet", alphabet), ("--length", length))
            missing = " and ".join(f for f, v in flags if v is None)
            raise ThermoGFNError(f"custom reward {spec!r} needs {missing} (e.g. --alphabet ACGT --length 8)")
        _check_options("custom", opts, _CUSTOM_OPTIONS)
        fn, fn_name = load_reward_function(spec)
        name = opts.pop("name", fn_name)
        return CustomTask(fn, alphabet, int(length), name=name, reward_min=reward_min, min_length=min_length,
                          **opts)
    key = spec.lower()
    if key not in TASKS:
        hint = f" (a reward file needs its function: {spec}:reward)" if key.endswith(".py") else ""
        raise ThermoGFNError(f"unknown task {spec!r}{hint}; known tasks: {', '.join(TASKS)}, "
                             "or a custom reward path/to/file.py:function")
    if alphabet is not None or length is not None or reward_min is not None:
        raise ThermoGFNError(f"--alphabet/--length/--reward-min apply only to custom rewards, "
                             f"not to task {key}")
    _check_options(key, opts, _TASK_OPTIONS[key])
    if min_length is not None and key not in VARIABLE_LENGTH_TASKS:
        what = "points of a fixed dimension" if key == "hypergrid" else "strings of one length (a fixed table)"
        raise ThermoGFNError(f"--min-length applies to tasks whose reward scores any length (custom rewards, "
                             f"{', '.join(VARIABLE_LENGTH_TASKS)}); task {key} scores {what}: drop --min-length")
    if key == "tfbind8":
        from thermogfn.tasks.tfbind8 import TFBind8Task

        return TFBind8Task(data_dir)
    if key == "qm9str":
        from thermogfn.tasks.qm9str import QM9StrTask

        return QM9StrTask(data_dir)
    if key == "sehstr":
        from thermogfn.tasks.sehstr import SEHStrTask

        return SEHStrTask(data_dir)
    if key == "sehfrag":
        from thermogfn.tasks.sehfrag import SEHFragTask

        return SEHFragTask(data_dir)
    if key in ("rna1", "rna2", "rna3"):
        from thermogfn.tasks.rna import RNABindingTask

        return RNABindingTask(int(key[-1]), data_dir, min_length=min_length, **opts)
    from thermogfn.tasks.hypergrid import HypergridTask

    return HypergridTask(**opts)


def load_task(cfg: RunConfig) -> Task:
    """The task a run config names (data loaded and checked)."""
    check_hypergrid_options(cfg, cfg.task.strip().lower())  # before any data is loaded
    extra: dict[str, Any] = ({key: getattr(cfg, key) for key in HYPERGRID_DEFAULTS} if cfg.task == "hypergrid"
                             else {})
    if ":" in cfg.task:
        extra["timeout"] = cfg.reward_timeout
    return make_task(cfg.task, data_dir=cfg.data_dir, alphabet=cfg.alphabet, length=cfg.length,
                     reward_min=cfg.reward_min, min_length=cfg.min_length, **extra)
