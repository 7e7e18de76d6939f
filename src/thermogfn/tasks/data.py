"""Locating and verifying task data files."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from thermogfn.errors import DataNotFoundError, ThermoGFNError

ENV_VAR = "THERMOGFN_DATA_DIR"

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def user_data_dir() -> Path:
    """The per-user data folder ``thermogfn data fetch`` writes to by default.

    ``$XDG_DATA_HOME/thermogfn`` (else ``~/.local/share/thermogfn``); on macOS
    ``~/Library/Application Support/thermogfn``; on Windows ``%LOCALAPPDATA%\\thermogfn``.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = xdg if os.path.isabs(xdg) else str(Path.home() / ".local" / "share")
    return Path(base) / "thermogfn"


def default_roots() -> list[Path]:
    """Fallback data roots: ``../shared/data`` relative to the working directory, then to the repository,
    then :func:`user_data_dir`."""
    return [Path.cwd() / ".." / "shared" / "data", Path(__file__).parents[3] / ".." / "shared" / "data",
            user_data_dir()]


def _pick(root: Path, task_folder: str) -> Path:
    """``root`` may be the parent holding ``task_folder`` or the task folder itself."""
    sub = root / task_folder
    return sub if sub.is_dir() else root


def data_dir(cli_value: str | os.PathLike | None, task_folder: str) -> Path:
    """The folder holding a task's data files.

    Order: ``cli_value`` (``--data-dir``), ``$THERMOGFN_DATA_DIR``, ``../shared/data`` next to the working
    directory, then next to the repository, then :func:`user_data_dir` (where ``thermogfn data fetch`` writes).
    Each may be the parent of ``task_folder`` or the folder itself.
    An explicit value is returned even if it does not exist (the file check then names it); with none given
    and no default found, the first default candidate is returned.
    """
    for explicit in (cli_value, os.environ.get(ENV_VAR) or None):
        if explicit is not None and str(explicit) != "":
            return _pick(Path(explicit).expanduser(), task_folder)
    roots = default_roots()
    for root in roots:
        if (root / task_folder).is_dir():
            return (root / task_folder).resolve()
    return (roots[0] / task_folder).resolve()


def sha256_of(path: Path) -> str:
    """sha256 hex digest of a file, cached per (path, mtime, size)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    digest = _HASH_CACHE.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _HASH_CACHE[key] = h.hexdigest()
    return digest


def require_file(directory: str | os.PathLike, name: str, sha256: str | None, how_to_get: str) -> Path:
    """Path of ``directory/name``, checked to exist and (if ``sha256`` is given) to match its checksum.

    Raises :class:`DataNotFoundError` when absent and :class:`ThermoGFNError` when corrupt (one line each).
    """
    path = Path(directory) / name
    if not path.is_file():
        raise DataNotFoundError(f"data file {name} not found in {Path(directory)}; {how_to_get}")
    if sha256 is not None:
        got = sha256_of(path)
        if got != sha256.lower():
            raise ThermoGFNError(f"data file {path} is corrupt (sha256 {got[:12]}..., expected "
                                 f"{sha256[:12]}...); re-download it: {how_to_get}")
    return path
