"""A model in a worker process: the engines (`engine`, `batch_engine`), the worker (`worker`), devices and GGUF
materialization, which import torch, plus the plain types they take and return (`spec.WorkerSpec`,
`params.GenerationRequest`, `checkpoint`), which do not. It imports no other domain package."""
