"""Phase 6: the cluster's database is up, speaks only verified TLS, and
admits only the cluster's logins with SCRAM (the collector's `postgres.txt`:
pg_lsclusters, pg_settings, pg_hba_file_rules, a TLS handshake per address).

They judge the node that runs the database (`sovereign_postgres_host`, else
the orchestrator) and skip on the others."""

from __future__ import annotations

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import check, skip
from sovereign.hw.facts import Facts
from sovereign.hw.parsers.postgres import Postgres

HINT = "run phase 6 again (playbooks/phase-6-data.yml): role postgres renders these files"
# Methods that send a password in the clear or none at all.
WEAK_METHODS = {"trust", "password", "md5", "ident"}
# What each kind of rule may use: SCRAM or certificates over TLS, peer on the socket.
ALLOWED = {"hostssl": ("scram-sha-256", "cert", "reject"), "local": ("peer", "reject"),
           **{kind: ("reject",) for kind in ("host", "hostnossl", "hostgssenc", "hostnogssenc")}}


def _postgres(facts: Facts, expect: Expectations, check_id: str) -> Postgres | CheckResult:
    if not expect.database_host:
        return skip(check_id, "this node does not run the cluster's database")
    pg = facts.get("postgres.txt")
    if pg is None:
        return skip(check_id, facts.why_missing("postgres.txt"))
    return pg


@check("PG-UP", "the cluster's PostgreSQL is online on its port")
def pg_up(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "PG-UP"
    pg = _postgres(facts, expect, check_id)
    if isinstance(pg, CheckResult):
        return pg
    on_port = [c for c in pg.clusters if c.port == expect.database_port]
    if not on_port:
        found = ", ".join(f"{c.version}/{c.name} on {c.port}" for c in pg.clusters) or "no cluster"
        return CheckResult(id=check_id, status=Status.FAIL,
                           message=f"no cluster on port {expect.database_port} ({found})", hint=HINT)
    c = on_port[0]
    if c.status != "online":
        return CheckResult(id=check_id, status=Status.FAIL, message=f"{c.version}/{c.name} is {c.status}",
                           hint=f"journalctl -u postgresql@{c.version}-{c.name}; {HINT}")
    version = pg.settings.get("server_version", "?")
    return CheckResult(id=check_id, status=Status.PASS,
                       message=f"{c.version}/{c.name} online on {c.port} ({version})")


@check("PG-TLS", "the database speaks TLS on its management address, verified against the cluster CA")
def pg_tls(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "PG-TLS"
    pg = _postgres(facts, expect, check_id)
    if isinstance(pg, CheckResult):
        return pg
    problems = []
    if pg.settings.get("ssl") != "on":
        problems.append(f"ssl is {pg.settings.get('ssl', 'not reported')}")
    if pg.settings.get("password_encryption") != "scram-sha-256":
        problems.append(f"password_encryption is {pg.settings.get('password_encryption', 'not reported')}")
    address = expect.database_address or "127.0.0.1"
    probe = pg.probe(address, expect.database_port)
    if probe is None:
        problems.append(f"no TLS probe of {address}:{expect.database_port}")
    elif not probe.verified:
        why = probe.error or ("the server refused TLS" if not probe.connected else "not verified")
        problems.append(f"{address}:{expect.database_port}: {why}")
    if problems:
        return CheckResult(id=check_id, status=Status.FAIL, message="; ".join(problems),
                           hint=f"the clients verify the server with /etc/sovereign/pki/ca.crt; {HINT}")
    return CheckResult(id=check_id, status=Status.PASS,
                       message=f"{address}:{expect.database_port}: {probe.protocol}, {probe.peer}, verified")


@check("PG-HBA", "pg_hba admits only TLS with SCRAM, and rejects everyone else")
def pg_hba(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "PG-HBA"
    pg = _postgres(facts, expect, check_id)
    if isinstance(pg, CheckResult):
        return pg
    if not pg.hba:
        return CheckResult(id=check_id, status=Status.FAIL, message="no pg_hba rule was read", hint=HINT)
    bad = []
    for r in pg.hba:
        parts = (r.type, ",".join(r.databases), ",".join(r.users), r.network)
        what = " ".join(part for part in parts if part)
        where = f"line {r.line} ({what})"
        if r.error:
            bad.append(f"{where}: {r.error}")
        elif r.method in WEAK_METHODS:
            bad.append(f"{where}: {r.method}")
        elif r.type in ("host", "hostnossl", "hostgssenc", "hostnogssenc") and r.method != "reject":
            bad.append(f"{where}: not TLS-only")
        elif r.method not in ALLOWED.get(r.type, ()):
            bad.append(f"{where}: {r.method}")
    rejects = {r.network for r in pg.hba if r.method == "reject" and r.type.startswith("host")}
    if "0.0.0.0/0" not in rejects:
        bad.append("no final rule rejects every other IPv4 client")
    if bad:
        return CheckResult(id=check_id, status=Status.FAIL, message="; ".join(bad), hint=HINT)
    admitted = [r for r in pg.hba if r.type == "hostssl" and r.method != "reject"]
    users = sorted({u for r in admitted for u in r.users})
    return CheckResult(id=check_id, status=Status.PASS,
                       message=f"{len(admitted)} hostssl scram-sha-256 rules for {', '.join(users)}; "
                               "the rest rejected")
