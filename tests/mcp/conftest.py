"""Fixtures of the MCP server's tests, all real: a Postgres cluster (tests/support),
the knowledge database migrated by its owner, the router's Postgres store
migrated and written by the router's own store code, a login that can only
read both (as role `postgres` grants `sovereign_mcp`), the RAG store on Qdrant's
embedded engine, and the server itself as its unit runs it (`python -m
sovereign.mcp --config FILE`, a real uvicorn on a free port), spoken to with the
SDK's own client over streamable HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mcp_helpers import KEY, OTHER_KEY, ROOT, Bed, Served, reader_dsn, server_env, write_config
from pg_fixtures import pg_cluster  # noqa: F401 (a fixture: tests/support/pg_fixtures.py)
from testbed import PostgresCluster, free_port

from sovereign.knowledge import KnowledgeSettings, open_knowledge
from sovereign.mcp.pin import code_pin


@pytest.fixture(scope="module")
def bed(pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:  # noqa: F811
    from pydantic import SecretStr

    from sovereign.router.store import RouterStore

    tmp = tmp_path_factory.mktemp("mcp")
    suffix = uuid.uuid4().hex[:8]
    kdb_name, cdb_name = f"k_{suffix}", f"c_{suffix}"
    kdsn, cdsn = pg_cluster.create_db(kdb_name), pg_cluster.create_db(cdb_name)
    kdb = open_knowledge(KnowledgeSettings(dsn=kdsn))
    store = RouterStore.postgres(SecretStr(cdsn), 3.0, 10.0)
    store.migrate()
    store.close()
    role = f"mcp_reader_{suffix}"
    rag_config = tmp / "rag.yaml"
    rag_config.write_text(yaml.safe_dump({"engine": "embedded", "path": str(tmp / "qdrant"),
                                          "embedding": {"backend": "hashed"}}))
    config = {
        "listen": {"host": "127.0.0.1", "port": free_port(), "allowed_hosts": ["mcp.mimical.lan"]},
        "callers": {"owner": KEY, "laptop": OTHER_KEY},
        "knowledge": reader_dsn(pg_cluster, kdb_name, kdsn, "sovereign", role),
        "crystals": reader_dsn(pg_cluster, cdb_name, cdsn, "public", role),
        "rag": str(rag_config),
        "tools_pin": code_pin(),
        "state_dir": str(tmp / "state"),
    }
    yield Bed(kdb, cdsn, rag_config, config, tmp)
    kdb.close()


@pytest.fixture(scope="module")
def served(bed: Bed) -> Iterator[Served]:
    """The server as its unit runs it, until the module's tests are done."""
    config = write_config(bed.tmp / "mcp.yaml", bed.config)
    log = (bed.tmp / "mcp.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "sovereign.mcp", "--config", str(config)], cwd=ROOT,
                            env=server_env(bed.tmp), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{bed.config['listen']['port']}"
    deadline = time.monotonic() + 30
    while True:  # up when it accepts a connection
        try:
            socket.create_connection(("127.0.0.1", bed.config["listen"]["port"]), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the MCP server did not start: {(bed.tmp / 'mcp.log').read_text()}") \
                    from None
            time.sleep(0.1)
    yield Served(url, bed)
    proc.terminate()
    proc.wait(20)
    log.close()


