"""The RAG store: the owner's documents split into chunks, embedded with the
cluster's local embedder (sovereign/service/embed.py) and kept in Qdrant, so
that the router and the MCP servers can retrieve the passages a question needs.

A data module, not a service: services import it (`RagStore.open(settings)
.search(question, n)`), and it imports only the kit, inventory, errors and
paths (docs/architecture.md). docs/rag.md describes the collection, the
payload, re-ingesting and the engines.
"""

from sovereign.rag.settings import RagSettings, rag_settings
from sovereign.rag.store import Hit, ModelMismatch, RagStore

__all__ = ["Hit", "ModelMismatch", "RagSettings", "RagStore", "rag_settings"]
