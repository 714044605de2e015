"""What the owner's system knows: the behavioral events (an append-only hash
chain) and the methodology rules (the owner's standards as versioned data),
in Postgres's `sovereign` schema.

A data module, not a service: the services that need it (KAIROS, the MCP
servers) import it, and it imports only the kit, inventory, errors and paths
(docs/architecture.md). docs/knowledge.md describes the tables, the chain,
the maintenance switch and the writers' role.
"""

from sovereign.knowledge.settings import KnowledgeSettings, knowledge_settings
from sovereign.knowledge.store import KnowledgeDB, open_knowledge

__all__ = ["KnowledgeDB", "KnowledgeSettings", "knowledge_settings", "open_knowledge"]
