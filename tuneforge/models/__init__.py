"""Any model identifier resolved to what it names and how to load it (docs/architecture.md).

- `resolve`: ModelResolver, from a foundation model id, alias or ARN, a custom model name, id or ARN, or a
  provisioned model ARN, id or name to a typed reference (FoundationRef, CustomRef, ProvisionedRef).
- `specs`: the one place a WorkerSpec is built (a foundation model, a custom model on its base, an embedding model).

Used by the CLI, the API's serving Resolver, deployments, jobs and evaluation alike; no torch.
"""
