"""Bedrock's knowledge-base APIs: `bedrock-agent` (control.py) and `bedrock-agent-runtime` (runtime.py)."""
