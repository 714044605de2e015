"""What the MCP server's tests share: the caller keys, the test bed's parts,
the server run as its unit runs it, and the SDK's own client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from testbed import PostgresCluster

from sovereign.knowledge import KnowledgeDB

ROOT = Path(__file__).resolve().parents[2]
KEY = "mcp-test-caller-key-0123456789"
OTHER_KEY = "mcp-other-caller-key-9876543210"


def reader_dsn(cluster: PostgresCluster, db: str, owner_dsn: str, schema: str, role: str) -> str:
    """A login on `db` that may only SELECT in `schema`."""
    import psycopg

    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; "
                     "END $$")
        conn.execute(f"GRANT CONNECT ON DATABASE {db} TO {role}")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    return f"host={cluster.sock} port={cluster.port} user={role} dbname={db}"


@dataclass
class Bed:
    knowledge: KnowledgeDB  # the owner's connection: what writes the events and rules
    crystals_dsn: str  # the router store's owner DSN
    rag_config: Path
    config: dict[str, Any]
    tmp: Path


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def server_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOVEREIGN_MCP_")}
    env["SOVEREIGN_STATE_DIR"] = str(tmp / "state")
    return env


def run_server(config: Path, tmp: Path, *args: str,
               timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`python -m sovereign.mcp --config FILE` to its end (for a start it refuses)."""
    return subprocess.run([sys.executable, *args, "--config", str(config)], cwd=ROOT, env=server_env(tmp),
                          capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    bed: Bed

    @property
    def endpoint(self) -> str:
        return self.url + "/mcp"


async def _with_client(endpoint: str, key: str | None, work: Any, statuses: list[int] | None) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def seen(response: Any) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx2.AsyncClient(headers=headers, timeout=20, event_hooks={"response": [seen]}) as http, \
            Client(streamable_http_client(endpoint, http_client=http)) as client:
        return await work(client)


def with_client(served: Served, work: Any, key: str | None = KEY, statuses: list[int] | None = None) -> Any:
    """Run `await work(client)` with the SDK's own client, connected with `key`
    (`statuses`: the HTTP status of each response it got, appended)."""
    return asyncio.run(_with_client(served.endpoint, key, work, statuses))


def call(served: Served, tool: str, arguments: dict[str, Any]) -> Any:
    """A tool's result (the SDK's CallToolResult)."""
    return with_client(served, lambda c: c.call_tool(tool, arguments))
