"""Bedrock's wire shapes, at the edge: the response shapes of jobs, custom models, provisioned models and
knowledge bases built from their rows, and the model-native InvokeModel bodies (`bodies`) mapped onto
GenerationRequest / GenerationResult. Used by the HTTP API (tuneforge.api) and by the CLI's `--json`, so
scripts see one format everywhere; domain packages never import it."""
