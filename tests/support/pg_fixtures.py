"""The real Postgres of the tests that need one (tests/router, tests/knowledge):
Debian's server binaries, a private cluster in a temporary directory for the
session, one fresh database per test. A conftest imports the fixtures."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed import PostgresCluster, find_pg_bin, install_postgres


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_pg_bin() or install_postgres()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin) and not root to "
                    "install them: apt-get install postgresql")
    # Not under pytest's tmp dir: that is private to root, and the cluster runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="sovereign-pg-"))
    cluster = PostgresCluster(bin_dir, root).start()
    yield cluster
    cluster.stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_cluster: PostgresCluster) -> str:
    return pg_cluster.create_db("t_" + uuid.uuid4().hex[:10])
