"""Assemble benchmarks/RESULTS.md from benchmarks/RESULTS.template.md and the tables in benchmarks/results/paper/.

``{{name/file}}`` in the template is replaced by the text of ``benchmarks/results/paper/name/file`` without its
title lines. Usage: ``python benchmarks/make_results.py`` (after ``bash benchmarks/paper_results.sh``).
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent


def table(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines if line.startswith("|")) + "\n"


def main() -> None:
    template = (HERE / "RESULTS.template.md").read_text()
    text = re.sub(r"\{\{([\w./-]+)\}\}", lambda m: table(HERE / "results" / "paper" / m.group(1)), template)
    (HERE / "RESULTS.md").write_text(text)
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
