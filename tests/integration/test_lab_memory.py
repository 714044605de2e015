"""Phase 6 on the lab, over real SSH: the cluster's PostgreSQL on mimical-1
with TLS from the cluster CA, the owner's event chain checked from this
machine over verified TLS, a hand edit of the server put back by the next
run, and no password in anything the run left. (The router's crystals in it:
test_lab_router.py, whose phase 7 follows this phase 6.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lab_helpers import MGMT, by_host, on_node

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
HEAD = "mimical-1"
LAB_VARS = yaml.safe_load((ROOT / "inventory/lab/group_vars/all.yml").read_text())
PASSWORDS = LAB_VARS["vault_postgres_passwords"]
# inventory/lab: sovereign_pki_dir.
CA = ROOT / ".cache/pki/lab/ca.crt"
OWNER_DSN = (f"postgresql://sovereign_owner:{PASSWORDS['owner']}@{MGMT[HEAD]}:5432/sovereign"
             f"?sslmode=verify-full&sslrootcert={CA}")


def as_postgres(db: str, sql: str) -> str:
    """A statement as the node's administrator (the socket, peer)."""
    return on_node(HEAD, f"cd / && runuser -u postgres -- psql -XAtq -d {db} -c \"{sql}\"").strip()


@pytest.fixture(scope="module")
def phase6(cli, lab):
    # After phase 4 (test_lab_inference.py); phase 7 is left to test_lab_router.py,
    # whose first run must apply it (and finds its database here).
    return by_host(cli.json("provision", "all", "--only", "1,2,4,6"), 6)


def test_phase_6_runs_on_both_nodes_and_its_checks_pass_on_the_database_host(phase6):
    assert {h: r["status"] for h, r in phase6.items()} == {"mimical-1": "applied", "mimical-2": "applied"}
    checks = {c["id"]: c["status"] for c in phase6[HEAD]["checks"]}
    assert checks == {"PG-UP": "pass", "PG-TLS": "pass", "PG-HBA": "pass"}, phase6[HEAD]["checks"]
    # The other node only trusts the CA: its checks skip, and it holds the certificate.
    assert {c["status"] for c in phase6["mimical-2"]["checks"]} == {"skip"}
    assert on_node("mimical-2", "cat /etc/sovereign/pki/ca.crt") == CA.read_text()


def test_a_second_run_changes_nothing(phase6, cli):
    again = by_host(cli.json("provision", "phase-6", "--force"), 6)
    assert {h: (r["status"], r["changed"]) for h, r in again.items()} == {
        "mimical-1": ("applied", 0), "mimical-2": ("applied", 0)}, again


BACKUP = ("systemd-run --quiet --wait --pipe --collect --service-type=exec --uid=sovereign-backup "
          "--gid=sovereign-backup --property=EnvironmentFile=/etc/sovereign/backup/env "
          "--property=Environment=SOVEREIGN_INVENTORY=none "
          "--property=Environment=HOME=/var/lib/sovereign/backup "
          "/opt/sovereign/backup/bin/python -m sovereign.backup --config /etc/sovereign/backup/backup.yml {}")


def test_the_timer_backs_up_and_the_restore_drill_passes(phase6):
    assert on_node(HEAD, "systemctl is-enabled sovereign-backup.timer").strip() == "enabled"
    on_node(HEAD, "systemctl start sovereign-backup.service", timeout=600)
    snapshots = json.loads(on_node(HEAD, BACKUP.format("list")))
    assert len(snapshots) >= 2, snapshots  # the one at deploy, and this one
    drill = json.loads(on_node(HEAD, BACKUP.format("restore-drill"), timeout=900))
    assert drill["ok"], drill
    compared = [f"{c['database']}: {c['what']}" for c in drill["comparisons"]]
    assert any("behavioral_events" in c for c in compared), compared
    assert all(c["ok"] for c in drill["comparisons"]), drill["comparisons"]
    # Not on the database host: nothing to back up there.
    # (systemctl exits 1 when no unit file matches.)
    units = on_node("mimical-2", "systemctl list-unit-files 'sovereign-backup*' --no-legend", check=False)
    assert units.strip() == "", units


def test_a_hand_edited_event_is_found_by_verify(phase6, cli):
    from sovereign.knowledge import events
    from sovereign.knowledge.events import NewEvent
    from sovereign.knowledge.settings import knowledge_settings
    from sovereign.knowledge.store import open_knowledge

    kdb = open_knowledge(knowledge_settings(dsn=OWNER_DSN))
    try:
        made = events.append_many(kdb, [NewEvent(source="lab-test", kind="probe", payload={"n": n})
                                        for n in range(3)])
    finally:
        kdb.close()
    assert cli.json("knowledge", "events", "verify", "--dsn", OWNER_DSN)["ok"] is True
    target = made[1].seq
    as_postgres("sovereign", "SET sovereign.maintenance = 'on'; UPDATE sovereign.behavioral_events "
                f"SET payload = '{{\\\"n\\\": 99}}' WHERE seq = {target}")
    bad = cli("knowledge", "events", "verify", "--dsn", OWNER_DSN, "--json", check=False)
    assert bad.returncode == 4, bad.stdout
    report = json.loads(bad.stdout)
    assert not report["ok"] and report["problem"]["kind"] == "edited", report
    assert report["problem"]["seq"] == target, report


def test_a_plain_connection_from_this_machine_is_refused(phase6):
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(OWNER_DSN.replace("sslmode=verify-full", "sslmode=disable"), connect_timeout=5)
    # Nor may another login come from here: only the owner is an admin client.
    router = OWNER_DSN.replace(f"sovereign_owner:{PASSWORDS['owner']}",
                               f"sovereign_router:{PASSWORDS['router']}")
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        psycopg.connect(router.replace("/sovereign?", "/sovereign_router?"), connect_timeout=5)


def test_a_hand_edit_of_the_server_is_put_back(phase6, cli):
    on_node(HEAD, "sed -i '/^local     all        postgres/a host all all 0.0.0.0/0 trust' "
                  "/etc/postgresql/15/main/pg_hba.conf && systemctl reload postgresql@15-main")
    judged = subprocess.run([sys.executable, "-m", "sovereign", "provision", "phase-6", "--force",
                             "--limit", HEAD, "--json"], cwd=ROOT, env=cli.env,
                            capture_output=True, text=True, timeout=900)
    result = by_host(json.loads(judged.stdout), 6)[HEAD]
    assert result["changed"] >= 1 and result["status"] == "applied", result
    methods = as_postgres("postgres", "SELECT string_agg(auth_method, ',') FROM pg_hba_file_rules")
    assert "trust" not in methods.split(","), methods


def test_no_password_is_in_the_ledger_the_runs_or_the_logs(phase6, cli):
    state = Path(cli.env["SOVEREIGN_STATE_DIR"])
    secrets = [*PASSWORDS.values(), LAB_VARS["vault_pki_ca_passphrase"]]
    found = subprocess.run(["grep", "-rlF", *[f"-e{s}" for s in secrets], str(state)],
                           capture_output=True, text=True)
    assert found.stdout == "", f"secrets in: {found.stdout}"
    logs = on_node(HEAD, "cat /var/log/postgresql/*.log; journalctl --no-pager -o cat -u 'postgresql*' "
                         "-u sovereign-router")
    assert not [s for s in secrets if s in logs]
