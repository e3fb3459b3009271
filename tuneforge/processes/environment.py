"""The environment of the torch subprocesses tuneforge starts (job, model worker and evaluation processes).

OpenMP threads spin while they wait for work by default. On a machine busier than its cores (several jobs and
workers, other programs) the spinning threads take the cores the working ones need: a training step of
SmolLM2-135M took 30 s instead of 7 s next to other work. Passive waiting costs ~3% on a quiet machine
(15.5 vs 14.9 s for the same two steps, measured), so it is the default; a user's OMP_WAIT_POLICY wins.
"""

from __future__ import annotations

import os

DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def torch_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**DEFAULTS, **os.environ, **(extra or {})}
