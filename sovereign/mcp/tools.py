"""The MCP data server's tools: four, each read-only.

- `search_knowledge`: the RAG store's chunks nearest a query (sovereign.rag);
- `list_events`: the owner's behavioral events, newest first (sovereign.knowledge);
- `get_rules`: the methodology rules in force at a time, or every rule's latest version;
- `query_crystals`: the router's crystals (answers it kept), filtered by text.

Nothing here writes: the sessions to both databases are read-only
(`default_transaction_read_only`), on top of logins that can only read
(role `postgres`). A tool with a side effect waits for the approval gate.

Each input is validated with limits (the schema a client sees says them); a
source that is not configured or cannot be reached is the tool's error, with
the reason, never the server's crash. The definitions (name, description,
input and output schema, annotations) are pinned: pin.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, SecretStr

from sovereign.errors import SovereignError
from sovereign.knowledge import events, rules
from sovereign.knowledge.events import Event
from sovereign.knowledge.rules import Rule
from sovereign.knowledge.store import KnowledgeDB
from sovereign.mcp.settings import McpSettings
from sovereign.service.settings import ServiceConfigError
from sovereign.service.sql import PostgresDatabase

if TYPE_CHECKING:
    from sovereign.service.embed import Embedder

NAME = "sovereign-data"
MAX_LIMIT = 100
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True,
                            openWorldHint=False)
CRYSTAL_SQL = ("SELECT id, prompt, answer, provider, created_at FROM crystals "
               "WHERE prompt ILIKE %s OR answer ILIKE %s ORDER BY created_at DESC LIMIT %s")


# --------------------------------------------------------------------------- what the tools return


class Passage(BaseModel):
    """A chunk of a document in the RAG store (the fields of sovereign.rag's Hit)."""

    chunk_id: str
    source: str = Field(description="the document's path")
    sha256: str = Field(description="SHA-256 of the document's version the chunk is from")
    start: int = Field(description="the chunk's first character in the document's extracted text")
    end: int
    text: str
    score: float = Field(description="cosine similarity to the query, higher is nearer")


class Passages(BaseModel):
    passages: list[Passage]


class Events(BaseModel):
    events: list[Event]


class Rules(BaseModel):
    rules: list[Rule]


class Crystal(BaseModel):
    """An answer the router kept, with the question it answered."""

    id: str
    question: str
    answer: str
    provider: str = Field(description="who answered: a local tier's model or a cloud provider")
    created_at: datetime


class Crystals(BaseModel):
    crystals: list[Crystal]


# --------------------------------------------------------------------------- the sources


def read_only(dsn: SecretStr, key: str) -> SecretStr:
    """`dsn` with its sessions read-only; a DSN that does not parse names the key, never the value."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    value = dsn.get_secret_value()
    try:
        options = conninfo_to_dict(value).get("options", "")
    except ProgrammingError:
        raise ServiceConfigError(f"{key}: not a valid Postgres connection string",
                                 hint="e.g. postgresql://USER@HOST:5432/DB or 'host=H dbname=D user=U'",
                                 ) from None
    options = f"{options} -c default_transaction_read_only=on".strip()
    return SecretStr(make_conninfo(value, options=options))


class Sources:
    """The data the tools read, each connection opened on first use (a
    database down at start is a tool's error until it is back)."""

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self._knowledge: KnowledgeDB | None = None
        self._crystals: PostgresDatabase | None = None
        self._embedder: Embedder | None = None
        where = ", ".join(settings.source) or "settings"
        for key in ("knowledge", "crystals"):  # a bad DSN is a settings error at start
            dsn = getattr(settings, key)
            if dsn is not None:
                read_only(dsn, f"{where}: {key}")

    def _dsn(self, key: str) -> SecretStr:
        dsn = getattr(self.settings, key)
        if dsn is None or not dsn.get_secret_value().strip():
            raise ToolError(f"this server has no {key} database configured (`{key}:` in its settings)")
        return read_only(dsn, key)

    def knowledge(self) -> KnowledgeDB:
        with self.lock:
            if self._knowledge is None:
                s = self.settings
                self._knowledge = KnowledgeDB.connect(self._dsn("knowledge"),
                                                      connect_timeout_s=s.connect_timeout_s,
                                                      statement_timeout_s=s.statement_timeout_s)
            return self._knowledge

    def crystals(self) -> PostgresDatabase:
        with self.lock:
            if self._crystals is None:
                s = self.settings
                self._crystals = PostgresDatabase(self._dsn("crystals"), s.connect_timeout_s,
                                                  statement_timeout_s=s.statement_timeout_s)
            return self._crystals

    def search(self, query: str, limit: int) -> list[Passage]:
        """The RAG store opened for the call and closed after it (the embedded
        engine serves one process at a time); the embedder is loaded once."""
        from sovereign.rag.settings import rag_settings
        from sovereign.rag.store import RagStore, make_embedder

        settings = rag_settings(self.settings.rag)
        with self.lock:
            if self._embedder is None:
                self._embedder = make_embedder(settings)
            embedder = self._embedder
        with RagStore.open(settings, embedder) as store:
            return [Passage.model_validate(h.model_dump()) for h in store.search(query, limit)]

    def close(self) -> None:
        with self.lock:
            for db in (self._knowledge, self._crystals):
                if db is not None:
                    db.close()
            self._knowledge = self._crystals = None


def _answer(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a read; a store's failure becomes the tool's error, with its reason and hint."""
    try:
        return fn(*args, **kwargs)
    except SovereignError as exc:
        raise ToolError(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None


def like(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --------------------------------------------------------------------------- the server


Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"how many at most (1..{MAX_LIMIT})")]


def build_server(sources: Sources | None) -> MCPServer:
    """The MCP server with the four tools over `sources` (None: the definitions
    only, for the pin)."""
    server = MCPServer(NAME, instructions="Read-only access to the owner's knowledge: documents (RAG), "
                       "behavioral events, methodology rules and the router's kept answers.")

    def need() -> Sources:
        if sources is None:
            raise ToolError("this server was built without data sources")
        return sources

    @server.tool(annotations=READ_ONLY)
    def search_knowledge(
        query: Annotated[str, Field(min_length=1, max_length=2000, description="what to look for")],
        limit: Annotated[int, Field(ge=1, le=50, description="how many passages at most (1..50)")] = 5,
    ) -> Passages:
        """The passages of the owner's documents (the RAG store) nearest in meaning to `query`, best first."""
        return Passages(passages=_answer(need().search, query, limit))

    @server.tool(annotations=READ_ONLY)
    def list_events(
        limit: Limit = 20,
        kind: Annotated[str | None, Field(min_length=1, max_length=100,
                                          description="only events of this kind")] = None,
    ) -> Events:
        """The owner's behavioral events (an append-only hash chain), newest first."""
        return Events(events=_answer(lambda: events.list_events(need().knowledge(), limit=limit, kind=kind)))

    @server.tool(annotations=READ_ONLY)
    def get_rules(
        at: Annotated[datetime | None, Field(description="the rules in force at this time (ISO 8601, "
                                                        "default now)")] = None,
        every: Annotated[bool, Field(description="instead, the latest version of every rule, retired "
                                                 "ones included")] = False,
    ) -> Rules:
        """The owner's methodology rules: those in force at `at`, or with `every` each rule's latest."""
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return Rules(rules=_answer(lambda: rules.list_rules(need().knowledge(), every=every, at=at)))

    @server.tool(annotations=READ_ONLY)
    def query_crystals(
        text: Annotated[str, Field(max_length=500, description="words the question or the answer contains "
                                                               "(case-insensitive; empty: any)")] = "",
        limit: Limit = 20,
    ) -> Crystals:
        """Answers the router kept (crystals) whose question or answer contains `text`, newest first."""
        rows = _answer(lambda: need().crystals().execute(CRYSTAL_SQL, (like(text), like(text), limit),
                                                         fetch="all"))
        return Crystals(crystals=[Crystal(id=r[0], question=r[1], answer=r[2], provider=r[3],
                                          created_at=datetime.fromtimestamp(r[4], UTC)) for r in rows])

    return server
