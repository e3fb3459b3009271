"""Which executor the settings ask for (TUNEFORGE_EXECUTOR): this host, or a Ray cluster."""

from __future__ import annotations

from tuneforge.processes.executor import Executor
from tuneforge.processes.local import LOCAL
from tuneforge.processes.ray import RayExecutor, source_env
from tuneforge.settings import Settings


def executor_for(settings: Settings) -> Executor:
    if settings.executor == "ray":
        return RayExecutor(settings.ray_address, python=settings.ray_python, env=source_env())
    return LOCAL
