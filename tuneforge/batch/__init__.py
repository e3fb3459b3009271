"""Batch inference (Bedrock's CreateModelInvocationJob): the request, statuses, service, queue, records and the job
process that runs a JSONL file of InvokeModel or Converse bodies through one model worker."""
