"""The OpenAI-compatible API (/v1): protocol.py wire models, serving.py logic, routes.py thin routes, errors.py."""
