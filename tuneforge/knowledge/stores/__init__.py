"""Vector stores for knowledge bases: the interface (`base`) and its implementations.

    store = SqliteStore(path, dimension=384, name=kb_id); store.open()
    store.replace_document(uri, chunks); store.search(query_vector, k=5, filter=parse_filter(request_filter))
"""

from __future__ import annotations

from tuneforge.knowledge.stores.base import Hit, MetadataValue, StoredChunk, VectorStore
from tuneforge.knowledge.stores.sqlite import SqliteStore

__all__ = ["Hit", "MetadataValue", "SqliteStore", "StoredChunk", "VectorStore"]
