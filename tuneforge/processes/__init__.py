"""Every process tuneforge starts besides itself, through one framework.

- `executor`: the Executor protocol (start, liveness, stop of detached processes; spawn of child processes) and
  the ProcessHandle a job row records; `local`: its one implementation today, processes on this host.
- `detached`: detached processes (customization jobs, ingestion jobs), both sides: the process's own main
  (SIGTERM to stop, outcome to its row, heartbeat) and the liveness check its service reconciles with after a
  restart.
- `pipe`: JSON lines to and from child processes (model workers, evaluation) and the errors carried in them.
- `environment`: the environment every such process gets.

The submodules are imported by name (this package imports none of them), so a model worker that needs only
`pipe` loads nothing else.
"""
