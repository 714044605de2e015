"""What role postgres leaves on mimical-1: the server on its address and the
loopback only, TLS that a client verifies against the cluster CA, pg_hba that
refuses plain connections and foreign databases, and each login held to its
privileges. Every query runs in the container through its own psycopg2."""

import json
import os
import shlex
from pathlib import Path

import pytest
import testinfra

NODE = testinfra.get_host("podman://mimical-1")
PASSWORDS = {"owner": "molecule-pg-owner-not-secret", "router": "molecule-pg-router-not-secret",
             "kairos": "molecule-pg-kairos-not-secret", "mcp": "molecule-pg-mcp-not-secret",
             "backup": "molecule-pg-backup-not-secret"}
CA = "/etc/sovereign/pki/ca.crt"

# Runs in the container: connect, run the statements, print JSON (rows or the error).
CLIENT = r'''
import json, sys, psycopg2
args = json.loads(sys.argv[1])
try:
    conn = psycopg2.connect(**args["conn"])
    conn.autocommit = True
    out = []
    with conn.cursor() as cur:
        for sql in args["sql"]:
            cur.execute(sql)
            out.append(cur.fetchall() if cur.description else None)
    print(json.dumps({"ok": out}))
except Exception as exc:
    print(json.dumps({"error": str(exc).strip()}))
'''


def address() -> str:
    return NODE.check_output("hostname -I").split()[0]


def run(login: str, db: str, *sql: str, sslmode: str = "verify-full", host: str | None = None) -> dict:
    conn = {"host": host or address(), "port": 5432, "dbname": db, "user": f"sovereign_{login}",
            "password": PASSWORDS[login], "sslmode": sslmode, "sslrootcert": CA, "connect_timeout": 5}
    payload = json.dumps({"conn": conn, "sql": list(sql)})
    out = NODE.run(f"python3 -c {shlex.quote(CLIENT)} {shlex.quote(payload)}")
    return json.loads(out.stdout)


def test_the_server_runs_at_boot():
    unit = NODE.service("postgresql@15-main")
    assert unit.is_running and unit.is_enabled


def test_it_listens_on_its_address_and_the_loopback_only():
    ports = {line.split()[3] for line in NODE.check_output("ss -H -t -l -n 'sport = :5432'").splitlines()}
    assert ports == {f"{address()}:5432", "127.0.0.1:5432"} | ({"[::1]:5432"} & ports), ports


@pytest.mark.parametrize("login,db", [("owner", "sovereign"), ("router", "sovereign_router"),
                                      ("kairos", "sovereign"), ("mcp", "sovereign_router"),
                                      ("backup", "sovereign")])
def test_each_login_connects_over_verified_tls(login, db):
    got = run(login, db, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert got == {"ok": [[[True]]]}, got


def test_a_connection_without_tls_is_refused():
    got = run("owner", "sovereign", "SELECT 1", sslmode="disable")
    assert "no encryption" in got.get("error", ""), got


def test_a_login_cannot_reach_another_services_database():
    assert "pg_hba.conf rejects" in run("router", "sovereign", "SELECT 1").get("error", "")
    assert "pg_hba.conf rejects" in run("kairos", "sovereign_router", "SELECT 1").get("error", "")


def test_the_certificate_names_the_address_the_clients_use():
    # verify-full checks the name: the loopback is in the certificate, a name that is not fails.
    assert run("owner", "sovereign", "SELECT 1", host="127.0.0.1") == {"ok": [[[1]]]}
    NODE.run("grep -q 'postgres-alias' /etc/hosts || "
             "echo \"$(hostname -I | cut -d' ' -f1) postgres-alias\" >> /etc/hosts")
    wrong = run("owner", "sovereign", "SELECT 1", host="postgres-alias")
    assert "does not match host name" in wrong.get("error", ""), wrong


def test_the_reader_reads_and_cannot_write():
    made = run("owner", "sovereign", "CREATE TABLE IF NOT EXISTS sovereign.probe (n int)",
               "INSERT INTO sovereign.probe VALUES (1)")
    assert "ok" in made, made
    assert run("mcp", "sovereign", "SELECT count(*) FROM sovereign.probe")["ok"][0][0][0] >= 1
    denied = run("mcp", "sovereign", "INSERT INTO sovereign.probe VALUES (2)")
    assert "permission denied" in denied.get("error", ""), denied
    denied = run("mcp", "sovereign", "CREATE TABLE sovereign.mine (n int)")
    assert "permission denied" in denied.get("error", ""), denied


def test_no_login_is_a_superuser_or_may_create_roles():
    rows = run("owner", "sovereign", "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
               "WHERE rolname LIKE 'sovereign_%' ORDER BY rolname")["ok"][0]
    assert {r[0] for r in rows} >= {f"sovereign_{k}" for k in PASSWORDS}
    assert all(not (r[1] or r[2] or r[3]) for r in rows), rows


def test_the_passwords_are_stored_as_scram_and_logged_nowhere():
    shadow = NODE.check_output("runuser -u postgres -- psql -XAtc \"SELECT rolpassword FROM pg_authid "
                               "WHERE rolname LIKE 'sovereign_%' AND rolcanlogin\"").split()
    assert len(shadow) == len(PASSWORDS) and all(s.startswith("SCRAM-SHA-256$") for s in shadow), shadow
    logs = NODE.run("cat /var/log/postgresql/*.log; journalctl --no-pager -o cat").stdout
    assert not [p for p in PASSWORDS.values() if p in logs]


def test_the_server_key_stays_on_the_node_and_the_ca_key_is_encrypted():
    pki = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
    assert sorted(p.name for p in pki.iterdir()) == ["ca.crt", "ca.key"]
    assert "ENCRYPTED" in (pki / "ca.key").read_text()
    key = NODE.file("/etc/postgresql/15/main/ssl/server.key")
    assert key.user == "postgres" and key.mode == 0o600
