"""`tuneforge eval rouge|perplexity` (placeholder until the evaluation commands land)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Compare models: ROUGE on held-out prompts, perplexity on held-out text.", no_args_is_help=True)
