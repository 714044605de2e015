"""Phase 7 on the lab, over real SSH: the router on mimical-1 (the
orchestrator), installed from the controller's wheels, answering through
SmolLM2 on mimical-2 (phase 4's llama-server, over the management network),
with the official OpenAI client; a second run changes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from lab_helpers import MGMT, by_host, on_node

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
HEAD = "mimical-1"
ROUTER = f"http://{MGMT[HEAD]}:8090"
KEY = "lab-llama-key-not-secret"
# inventory/lab: router_callers.
OWNER_KEY = "lab-router-owner-key-not-secret"


def on_head(command: str) -> str:
    return on_node(HEAD, command)


@pytest.fixture(scope="module")
def phase7(cli, lab):
    # Phases 1, 2 and 4 first (applied, or up to date): the router's tiers.
    return by_host(cli.json("provision", "all"), 7)


def test_phase_7_runs_on_the_orchestrator_alone(phase7, cli):
    assert list(phase7) == ["mimical-1"] and phase7["mimical-1"]["status"] == "applied", phase7
    cells = {h["host"]: {c["phase"]: c["status"] for c in h["phases"]} for h in cli.json("status")["hosts"]}
    assert cells["mimical-1"][7] == "applied" and cells["mimical-2"][7] == "not-here"


def test_the_openai_client_gets_an_answer_from_the_local_tier(phase7):
    from openai import OpenAI

    client = OpenAI(base_url=f"{ROUTER}/v1", api_key=OWNER_KEY, timeout=120)
    # A question nothing else on the lab asks: no crystal answers it yet.
    raw = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=16, messages=[{"role": "user", "content": "Which planet is the largest?"}])
    answer = raw.parse()
    assert answer.choices[0].message.content
    sovereign = raw.http_response.json()["sovereign"]
    # SmolLM2 on mimical-2 was asked first, over the management network.
    assert sovereign["path"][0]["tier"] == "system-1", sovereign


def test_configuration_comes_from_the_inventory_without_the_key(phase7):
    text = on_head("cat /etc/sovereign/router/router.yml")
    config = yaml.safe_load(text)
    assert [(t["name"], t.get("endpoint")) for t in config["tiers"][:2]] == [
        ("system-1", "http://10.213.77.12:8081"), ("system-2", "http://10.213.77.11:8082")]
    assert KEY not in text and OWNER_KEY not in on_head("cat /etc/sovereign/router/callers.json")
    mode = on_head("stat -c '%a %U %G' /etc/sovereign/router/env").split()
    assert mode == ["640", "root", "sovereign-router"]


def test_second_run_changes_nothing(phase7, cli):
    pid = on_head("systemctl show -p MainPID --value sovereign-router").strip()
    again = by_host(cli.json("provision", "phase-7", "--force"), 7)
    assert again["mimical-1"]["status"] == "applied" and again["mimical-1"]["changed"] == 0, again
    assert on_head("systemctl show -p MainPID --value sovereign-router").strip() == pid


# The lab's questions (inventory/lab: router_cloud_standin_answers). The first
# is asked twice: local tiers, then the cloud stand-in (simulated) behind the
# egress gate, crystallized; then served from the crystal. The financial one
# never leaves: the best local answer comes back, marked below threshold.
TWICE = "What is the capital of Italy?"
FINANCIAL = "How much of my salary should go to my mortgage?"


def node_cli(args: str) -> str:
    """`sovereign ARGS` on the head as an operator runs it: a login shell, which
    reads /etc/profile.d/sovereign-router.sh (the service's configuration)."""
    return on_head(f"bash -lc 'sovereign {args}'")


def ask(cli, question: str) -> dict:
    return cli.json("router", "ask", question)


def test_a_question_climbs_to_the_cloud_then_comes_back_from_its_crystal(phase7, cli):
    first = ask(cli, TWICE)
    s = first["sovereign"]
    decisions = [(p["tier"], p["decision"]) for p in s["path"]]
    # Every local tier that answered was below its threshold; the cloud tier answered.
    assert s["tier"] == "cloud" and s["simulated"] and s["egress"]["decision"] == "allow", decisions
    assert all(d in ("below-threshold", "skipped", "error", "timeout", "empty")
               for t, d in decisions if t.startswith("system-")), decisions
    assert s["crystal_id"] and first["answer"] == "Rome.", first
    assert first["path"].endswith("cloud (simulated) → crystallized"), first["path"]
    second = ask(cli, TWICE)
    assert second["sovereign"]["tier"] == "crystal" and second["answer"] == "Rome.", second
    assert second["sovereign"]["crystallized"]["crystal_id"] == s["crystal_id"]
    assert second["path"] == "crystal exact"
    crystals = json.loads(node_cli("router crystals list --json"))
    assert s["crystal_id"] in {c["id"] for c in crystals["crystals"]}


def test_a_financial_question_never_leaves(phase7, cli):
    out = ask(cli, FINANCIAL)
    s = out["sovereign"]
    assert s["domain"] == "financial" and s["egress"]["decision"] == "deny", s
    assert s["below_threshold"] and s["tier"].startswith("system-") and not s["crystal_id"], s
    assert "egress denied (financial)" in out["path"] and out["path"].endswith(
        "best local answer, below threshold"), out["path"]
    audit = json.loads(node_cli("router audit --json"))
    assert any(e["decision"] == "deny" and e["domain"] == "financial" and e["request_id"] == s["request_id"]
               for e in audit), audit


def test_callers_need_a_key_and_a_caller_without_egress_never_leaves(phase7, cli):
    import httpx

    refused = httpx.post(f"{ROUTER}/v1/chat/completions", timeout=30,
                         json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 401, refused.text
    # Asked as `kairos` (egress deny), a question no crystal answers stays in:
    # a local tier accepts it, or the gate denies the cloud in kairos's name.
    out = cli.json("router", "ask", "--caller", "kairos", "Which ocean is the largest? One word.")
    s = out["sovereign"]
    assert s["tier"].startswith("system-") and s["egress"]["decision"] in ("deny", "not-needed"), s
    if s["egress"]["decision"] == "deny":
        assert "caller 'kairos' may not use egress" in s["egress"]["reason"], s
    audit = json.loads(node_cli("router audit --json"))
    assert all(e["caller"] != "kairos" or e["decision"] == "deny" for e in audit), audit


def test_the_router_keeps_its_crystals_in_the_clusters_database(phase7, cli):
    question = "What is the capital of France?"
    cli.json("router", "ask", question)
    again = cli.json("router", "ask", question)
    assert again["sovereign"]["tier"] == "crystal", again["sovereign"]
    stored = on_database("sovereign_router", "SELECT count(*) FROM crystals WHERE prompt LIKE '%France%'")
    assert int(stored) >= 1
    # Over TLS: the router's own session to the database is encrypted.
    ssl = on_database("postgres", "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a "
                      "USING (pid) WHERE a.usename = 'sovereign_router'")
    assert ssl == "t"
    # The operator's command on the node reads the same store (the service's environment file).
    listed = json.loads(on_node(HEAD, "bash -lc 'sovereign router crystals list --json'"))
    assert again["sovereign"]["crystallized"]["crystal_id"] in {c["id"] for c in listed["crystals"]}
    # Its DSN holds the router's password: in the unit's environment file, in no run's record.
    password = yaml.safe_load((ROOT / "inventory/lab/group_vars/all.yml").read_text())[
        "vault_postgres_passwords"]["router"]
    found = subprocess.run(["grep", "-rlF", password, cli.env["SOVEREIGN_STATE_DIR"]],
                           capture_output=True, text=True)
    assert found.stdout == "", f"the router's password is in: {found.stdout}"
    assert "router.yml" not in on_head(f"grep -rlF {password} /etc/sovereign/router/ || true")


def on_database(db: str, sql: str) -> str:
    """A statement as the database host's administrator (phase 6: the socket, peer)."""
    return on_head(f"cd / && runuser -u postgres -- psql -XAtq -d {db} -c \"{sql}\"").strip()


def test_no_answer_on_the_lab_carries_template_markers(phase7, cli):
    markers = ("<|im_end|>", "<|im_start|>", "<end_of_turn>", "<start_of_turn>", "<|eot_id|>",
               "<|start_header_id|>", "</s>", "Question:")
    for tier in ("system-1", "system-2"):
        for question in ("What is 2 + 2?", "Name a primary colour."):
            cli.json("router", "ask", "--model", tier, question)
    # Every tier's answer, as the node's store kept it, not only the one returned.
    attempts = json.loads(node_cli("router attempts --json -n 200"))
    answers = [(a["tier"], a["answer"]) for a in attempts if a["tier"].startswith("system-") and a["answer"]]
    assert {t for t, _ in answers} == {"system-1", "system-2"}, answers
    dirty = [(t, a) for t, a in answers if any(m in a for m in markers)]
    assert not dirty, dirty
