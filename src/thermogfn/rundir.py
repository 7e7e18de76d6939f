"""A run directory: config.json, metrics.jsonl, checkpoints/, all written atomically."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from thermogfn.config import RunConfig
from thermogfn.errors import ThermoGFNError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path`` (mode 0666 minus the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # name the file, not the temporary one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class RunDir:
    """The files of one training run."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def load_config(self) -> RunConfig:
        if not self.is_run():
            raise ThermoGFNError(f"{self.path} is not a run directory (no {CONFIG}); "
                                 "pass the --out folder of a `thermogfn train` run")
        try:
            return RunConfig.from_dict(json.loads(self.config_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:  # bad JSON, undecodable bytes
            raise ThermoGFNError(f"{self.config_path} is not a valid run config ({exc}); "
                                 "re-run `thermogfn train`") from None

    def write_config(self, cfg: RunConfig) -> None:
        atomic_write_text(self.config_path, cfg.to_json() + "\n")

    def append_metrics(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with self.metrics_path.open("a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def clear(self) -> None:
        """Remove a previous run's files (config, metrics, checkpoints, plots)."""
        import shutil

        self.config_path.unlink(missing_ok=True)
        self.metrics_path.unlink(missing_ok=True)
        for folder in (CHECKPOINTS, "plots"):
            shutil.rmtree(self.path / folder, ignore_errors=True)

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl with ``rows`` atomically (used when resuming from a checkpoint)."""
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a crash
        return rows

    def checkpoint_paths(self) -> list[Path]:
        """Checkpoints, newest first."""
        folder = self.path / CHECKPOINTS
        return sorted(folder.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]), reverse=True)

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> Path:
        buf = io.BytesIO()
        torch.save(state, buf)
        path = self.path / CHECKPOINTS / f"step_{step:08d}.pt"
        atomic_write_bytes(path, buf.getvalue())
        for old in self.checkpoint_paths()[KEEP_CHECKPOINTS:]:
            old.unlink(missing_ok=True)
        return path

    def load_latest_checkpoint(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads; a corrupt one falls back to the one before it."""
        for path in self.checkpoint_paths():
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except Exception:  # noqa: BLE001 - a truncated or corrupt file: try the previous one
                continue
        return None


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path/.lock`` so that two runs never write the same directory.

    If the block fails and this call created ``path``, the folder is removed again when nothing but the lock
    is in it: a failing command leaves no half-made run directory.
    """
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = path / ".lock"
    with lock.open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ThermoGFNError(f"another thermogfn process is using {path}; wait for it or choose another --out") \
                from None
        try:
            yield
        except BaseException:
            if created and [p.name for p in path.iterdir()] == [lock.name]:
                lock.unlink()
                path.rmdir()
            raise
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
