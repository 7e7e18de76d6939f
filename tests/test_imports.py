"""The house's structure: imports flow one way (no circle), the core knows nothing of baselines, bench or CLI,
and the command line's help loads no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import thermogfn

PACKAGE = Path(thermogfn.__file__).parent
ON_TOP = ("thermogfn.baselines", "thermogfn.bench", "thermogfn.cli", "thermogfn.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (function bodies too), except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in known}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) - {name} for name, path in files.items()}


def test_the_import_graph_has_no_circle():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_core_imports_nothing_from_baselines_bench_or_cli():
    graph = _graph()
    core = [m for m in graph if not m.startswith(ON_TOP)]
    assert "thermogfn.gfn" in core and "thermogfn.loop" in core
    offending = {m: sorted(d for d in graph[m] if d.startswith(ON_TOP)) for m in core}
    offending = {m: d for m, d in offending.items() if d}
    assert not offending, offending


def test_help_loads_no_torch():
    code = ("import sys; from thermogfn.cli import cli; import thermogfn; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    done = subprocess.run([sys.executable, "-m", "thermogfn", "train", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "rna3" in done.stdout and "anneal-reverse:A:B[:W]" in done.stdout
