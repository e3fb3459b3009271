"""What a benchmark checks before any work: its packages are installed, and the shared data is where it looks.

A benchmark calls `require(...)` before importing anything heavy, so a missing package fails in the first second
with the package's name and the install command, not after minutes of measuring (bench/train_throughput.py once
trained its own side for 15 minutes, then died importing trl). `make install` installs the `bench` extra
(pyproject.toml), which declares what bench/ needs beyond tuneforge itself.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# import name -> what to pip-install, where the two differ
DISTRIBUTIONS = {"psycopg2": "psycopg2-binary", "sentence_transformers": "sentence-transformers", "rouge_score": "rouge-score"}


def require(*modules: str) -> None:
    """Exit with a message naming every missing package unless all `modules` (import names) can be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]  # finds, does not import: milliseconds
    if not missing:
        return
    names = ", ".join(DISTRIBUTIONS.get(m, m) for m in missing)
    script = Path(sys.argv[0]).name
    sys.exit(f"bench/{script} needs {names}, not installed for {sys.executable}.\n"
             f"Install what the benchmarks need with `make install` in {REPO} (tuneforge with its dev and bench extras), "
             f"or `{sys.executable} -m pip install -e '{REPO}[bench]'`.")


def shared_data(*needed: str) -> Path:
    """The shared data directory ($TUNEFORGE_SHARED_DATA, or ../shared/data beside the repository), after checking
    that each of `needed` (paths inside it) exists."""
    root = Path(os.environ.get("TUNEFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
    absent = [name for name in needed if not (root / name).exists()]
    if absent:
        sys.exit(f"bench/{Path(sys.argv[0]).name} needs {', '.join(absent)} in the shared data at {root}: "
                 "put the shared data at ../shared/data beside the repository or set TUNEFORGE_SHARED_DATA")
    return root
