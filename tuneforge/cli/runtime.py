"""What CLI commands share: settings read once, the metadata store, the catalog, the model resolver, error printing."""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from tuneforge.catalog.service import Catalog
from tuneforge.errors import TuneforgeError
from tuneforge.settings import Settings, load_settings
from tuneforge.wire.errors import exit_code

if TYPE_CHECKING:  # imported when first used: most commands never resolve a model
    from tuneforge.models.resolve import ModelResolver

console = Console()
err_console = Console(stderr=True)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    from tuneforge.db import open_database

    current = settings()
    return Catalog(current, open_database(current.database_url))


@lru_cache(maxsize=1)
def model_resolver() -> ModelResolver:
    """What a MODEL argument names, the same way the server reads a modelId (tuneforge.models.resolve)."""
    from tuneforge.cli.jobs import registry
    from tuneforge.models.resolve import ModelResolver

    return ModelResolver(settings(), catalog().sessions, catalog(), registry())


def print_json(data: object) -> None:
    # plain print (not Rich) so scripts get exactly one JSON document
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def report(exc: TuneforgeError) -> int:
    where = escape(f" [{exc.field}]") if exc.field else ""  # "[prompt]" would otherwise be read as Rich markup
    err_console.print(f"[bold red]error{where}:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    return exit_code(exc)
