"""Reward executors: where the raw rewards of a batch of objects are computed.

One interface, :meth:`RewardExecutor.map` (objects in, float64 raw rewards out, in order), three kinds:

* ``local`` (the default): ``task.raw_reward`` in this process on the whole batch, exactly as before.
* ``processes``: a local :class:`~concurrent.futures.ProcessPoolExecutor` (``fork`` on Linux: the task, and a custom
  reward with it, is inherited by the workers, nothing is pickled; ``spawn`` elsewhere: the task is pickled, with
  cloudpickle where it is installed).
* ``ray``: Ray tasks on a cluster (``address``) or on a local Ray started for the run. The task, and a custom reward
  function with it, is shipped with cloudpickle; the code of a ``file.py:function`` reward is shipped by value, so
  the file need not exist on the workers (what it imports must be installed there, and so must thermogfn).

``processes`` and ``ray`` split a batch into chunks (about four per worker), keep the order, and retry a chunk that
raised or whose worker was lost up to :data:`MAX_RETRIES` times; a reward that keeps failing stops the run with a
:class:`~thermogfn.errors.RewardError` naming it (a result is never replaced by zeros). The reward cache of
:class:`~thermogfn.trainer.RewardOracle` sits in front, so only objects never scored reach an executor.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import socket
import sys
import uuid
import warnings
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

import torch

from thermogfn.config import EXECUTORS
from thermogfn.errors import RewardError, ThermoGFNError

if TYPE_CHECKING:
    from thermogfn.tasks.base import Task

MAX_RETRIES = 2  # a chunk is tried at most 1 + MAX_RETRIES times
CHUNKS_PER_WORKER = 4
RAY_HINT = "pip install thermogfn[ray]"
RAY_CONNECT_TIMEOUT = 10.0  # seconds to reach --ray-address before giving up


def reward_label(task: Task) -> str:
    """How errors name a task's reward: the custom function's qualified name, else the task's name."""
    fn = getattr(task, "fn", None)
    name = getattr(fn, "__qualname__", None) if fn is not None else None
    return f"reward function {name}" if name else f"reward of task {task.name}"


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _worker_ready(task: Task) -> Task:
    """A task copy about to score chunks inside a worker: its own process pool (RNA) is turned off."""
    if isinstance(getattr(task, "workers", None), int):
        task.workers = 1
    return task


class RewardExecutor:
    """Raw rewards of a batch of objects of one task; :meth:`map` keeps their order."""

    name = "local"

    def __init__(self, task: Task):
        self.task = task

    def map(self, x: torch.Tensor) -> torch.Tensor:
        """Raw rewards of objects ``x`` (B, ...) as a float64 tensor (B,)."""
        return self.task.raw_reward(x)

    def close(self) -> None:
        """Release workers (they are started again on demand)."""

    def __enter__(self) -> RewardExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LocalExecutor = RewardExecutor


class ChunkedExecutor(RewardExecutor):
    """Splits a batch into chunks, runs them on workers, retries failed or lost ones (subclasses: the workers)."""

    def __init__(self, task: Task, workers: int | None, retries: int = MAX_RETRIES):
        super().__init__(task)
        self.workers = workers
        self.retries = retries

    # subclasses
    def _submit(self, part: torch.Tensor) -> Future:
        raise NotImplementedError

    def _n_workers(self) -> int:
        raise NotImplementedError

    def _after_failure(self, errors: list[BaseException]) -> None:
        """Called after a round in which chunks failed with ``errors`` (e.g. restart a broken pool)."""

    def map(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n == 0:
            return torch.zeros(0, dtype=torch.float64)
        size = math.ceil(n / (CHUNKS_PER_WORKER * self._n_workers()))
        parts = list(x.split(size))
        results: list[torch.Tensor | None] = [None] * len(parts)
        failures = [0] * len(parts)
        todo = list(range(len(parts)))
        while todo:
            futures = {self._submit(parts[i]): i for i in todo}
            wait(futures)
            todo, errors = [], []
            for fut, i in futures.items():
                exc = fut.exception()
                if exc is None:
                    results[i] = self._checked(fut.result(), parts[i].shape[0])
                    continue
                failures[i] += 1
                errors.append(exc)
                if failures[i] > self.retries:
                    self._after_failure(errors)
                    raise RewardError(f"{reward_label(self.task)} failed {failures[i]} times on a chunk of "
                                      f"{parts[i].shape[0]} objects on the {self.name} executor (last: "
                                      f"{one_line(exc)}); fix the reward, or debug it with --executor local")
                todo.append(i)
            if todo:
                self._after_failure(errors)
        return torch.cat(results)  # type: ignore[arg-type]

    def _checked(self, values: Any, n: int) -> torch.Tensor:
        out = torch.as_tensor(values, dtype=torch.float64)
        if out.shape != (n,):
            raise RewardError(f"{reward_label(self.task)} returned shape {tuple(out.shape)} for {n} objects on the "
                              f"{self.name} executor")
        return out


# ------------------------------------------------------------------------------------------------ processes
_WORKER_TASK: Task | None = None


def _init_process(task_or_blob: Any) -> None:
    global _WORKER_TASK
    task = pickle.loads(task_or_blob) if isinstance(task_or_blob, bytes) else task_or_blob
    _WORKER_TASK = _worker_ready(task)


def _process_chunk(part: Any) -> Any:
    assert _WORKER_TASK is not None
    return _WORKER_TASK.raw_reward(torch.from_numpy(part)).numpy()  # numpy: no tensor sharing between processes


def _default_context() -> str:
    return "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() \
        else "spawn"


class ProcessExecutor(ChunkedExecutor):
    """Chunks on a local process pool of ``workers`` processes (default: the CPU count)."""

    name = "processes"

    def __init__(self, task: Task, workers: int | None = None, mp_context: str | None = None,
                 retries: int = MAX_RETRIES):
        super().__init__(task, workers or os.cpu_count() or 1, retries)
        self.mp_context = mp_context or _default_context()
        # fork: the workers inherit the task (a custom reward loaded from a file included); spawn: it is pickled
        self._init_arg: Any = task if self.mp_context == "fork" else ship(task, *_spawn_dumps())
        self._pool: ProcessPoolExecutor | None = None

    def _n_workers(self) -> int:
        return self.workers

    def _submit(self, part: torch.Tensor) -> Future:
        if self._pool is None:
            with warnings.catch_warnings():  # Python >= 3.12 warns on fork() from a threaded process (torch)
                warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(self.mp_context),
                                                 initializer=_init_process, initargs=(self._init_arg,))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                return self._pool.submit(_process_chunk, part.numpy())
        except BrokenProcessPool as exc:
            fut: Future = Future()
            fut.set_exception(exc)
            return fut

    def _after_failure(self, errors: list[BaseException]) -> None:
        if any(isinstance(e, BrokenProcessPool) for e in errors):  # a worker died: start a fresh pool
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def ship(task: Task, dumps, how: str) -> bytes:
    """``dumps(task)``; a one-line :class:`ThermoGFNError` naming the reward when it cannot be serialised."""
    try:
        return dumps(task)
    except Exception as exc:  # noqa: BLE001 - whatever the serialiser raises on user objects
        raise ThermoGFNError(f"{reward_label(task)} cannot be shipped to workers ({how} failed: {one_line(exc)}); "
                             "make it a module-level function without open files, locks or sockets, or use "
                             "--executor local") from None


# ------------------------------------------------------------------------------------------------ ray
def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ThermoGFNError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


def check_reachable(address: str, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """A one-line :class:`ThermoGFNError` naming ``address`` (``[ray://]HOST[:PORT]``) unless a TCP connection to it
    opens within ``timeout`` seconds; ``auto`` and ``local`` are left to Ray."""
    if address in ("auto", "local"):
        return
    rest = address.split("://", 1)[-1]
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        host, port_text = rest, "10001" if address.startswith("ray://") else "6379"
    try:
        port = int(port_text)
    except ValueError:
        raise ThermoGFNError(f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379)") from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            pass
    except OSError as exc:
        raise ThermoGFNError(f"no Ray cluster reachable at --ray-address {address} within {timeout:g} s "
                             f"({exc.strerror or exc}); start one there with `ray start --head`, or check the "
                             "address") from None


def start_ray(ray: Any, address: str | None, cpus: int | None) -> bool:
    """Connect to the cluster at ``address``, else start a local Ray with ``cpus`` CPUs (default: all), unless Ray is
    already initialised in this process; True when this call started or joined it (the caller then shuts it down)."""
    if ray.is_initialized():
        return False
    # the workers see this process's THERMOGFN_* settings (data folder, threads), wherever they run
    settings = {k: v for k, v in os.environ.items() if k.startswith("THERMOGFN_")}
    env = {"env_vars": settings} if settings else None
    try:
        if address:
            ray.init(address=address, log_to_driver=False, runtime_env=env)
        else:
            ray.init(num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     runtime_env=env)
    except Exception as exc:  # noqa: BLE001 - Ray raises several types on a failed start or connection
        where = f"at --ray-address {address}" if address else "locally"
        raise ThermoGFNError(f"could not start or reach Ray {where}: {one_line(exc)}") from None
    return True


_RAY_TASKS: dict[str, Task] = {}  # per Ray worker process: shipped tasks by token


def _cloudpickle() -> Any:
    """The cloudpickle module: the package where installed, else the copy Ray ships (``ray.cloudpickle``), else
    None."""
    try:
        import cloudpickle
    except ImportError:
        try:
            from ray import cloudpickle
        except ImportError:
            return None
    return cloudpickle


def _ray_chunk(token: str, blob: bytes, part: torch.Tensor) -> torch.Tensor:
    task = _RAY_TASKS.get(token)
    if task is None:
        task = _RAY_TASKS[token] = _worker_ready(_cloudpickle().loads(blob))
    return task.raw_reward(part)


def _spawn_dumps() -> tuple[Any, str]:
    """How tasks are pickled for spawned workers: cloudpickle (reward files by value) where installed, else pickle."""
    if _cloudpickle() is None:
        return pickle.dumps, "pickle"
    return _ray_dumps, "cloudpickle"


def _ray_dumps(task: Task) -> bytes:
    """cloudpickle of ``task``, with modules loaded from reward files (``file.py:function``) shipped by value."""
    cloudpickle = _cloudpickle()
    for name, module in list(sys.modules.items()):
        if name.startswith("thermogfn_user_"):
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(task)


class RayExecutor(ChunkedExecutor):
    """Chunks as Ray tasks: on the cluster at ``address``, else on a local Ray started with ``workers`` CPUs
    (default: the CPU count)."""

    name = "ray"

    def __init__(self, task: Task, workers: int | None = None, address: str | None = None,
                 retries: int = MAX_RETRIES):
        super().__init__(task, workers, retries)
        self.ray = import_ray()
        self.address = address
        if address:
            check_reachable(address)
        self._blob = ship(task, _ray_dumps, "cloudpickle")
        self._token = uuid.uuid4().hex
        self._started = False
        self._remote: Any = None
        self._blob_ref: Any = None

    def _start(self) -> None:
        ray = self.ray
        self._started = start_ray(ray, self.address, self.workers)
        self._remote = ray.remote(max_retries=0, num_cpus=1)(_ray_chunk)
        self._blob_ref = ray.put(self._blob)

    def _n_workers(self) -> int:
        if self._remote is None:
            self._start()
        if self.workers:
            return self.workers
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def _submit(self, part: torch.Tensor) -> Future:
        return self._remote.remote(self._token, self._blob_ref, part).future()

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False
        self._remote = self._blob_ref = None


def make_executor(task: Task, kind: str = "local", workers: int | None = None,
                  address: str | None = None) -> RewardExecutor:
    """The executor ``kind`` (one of :data:`~thermogfn.config.EXECUTORS`) for ``task``; checks its inputs now."""
    if kind not in EXECUTORS:
        raise ThermoGFNError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ThermoGFNError(f"--workers must be an integer >= 1, got {workers!r}")
    if address is not None and kind != "ray":
        raise ThermoGFNError(f"--ray-address applies with --executor ray, not {kind}")
    if kind == "processes":
        return ProcessExecutor(task, workers)
    if kind == "ray":
        return RayExecutor(task, workers, address)
    if workers is not None:
        raise ThermoGFNError("--workers applies with --executor processes or ray; the local executor runs in process")
    return RewardExecutor(task)
