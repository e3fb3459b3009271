"""The parent side of generation, with no torch: resolve a model id to workers, start and talk to worker
processes (`client`), keep them (`pool` on demand, `supervisor` for provisioned throughput) and record
deployments. The model itself runs in a worker process (tuneforge.inference.worker)."""
