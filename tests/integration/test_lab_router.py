"""Phase 7 on the lab, over real SSH: the router on mimical-1 (the
orchestrator), installed from the controller's wheels, answering through
SmolLM2 on mimical-2 (phase 4's llama-server, over the management network),
with the official OpenAI client; a second run changes nothing."""

from __future__ import annotations

import pytest
import yaml
from lab_helpers import MGMT, by_host, on_node

pytestmark = pytest.mark.lab

HEAD = "mimical-1"
ROUTER = f"http://{MGMT[HEAD]}:8090"
KEY = "lab-llama-key-not-secret"


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

    client = OpenAI(base_url=f"{ROUTER}/v1", api_key="unused", timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=16, messages=[{"role": "user", "content": "What is the capital of France?"}])
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
    assert KEY not in text
    mode = on_head("stat -c '%a %U %G' /etc/sovereign/router/env").split()
    assert mode == ["640", "root", "sovereign-router"]


def test_second_run_changes_nothing(phase7, cli):
    pid = on_head("systemctl show -p MainPID --value sovereign-router").strip()
    again = by_host(cli.json("provision", "phase-7", "--force"), 7)
    assert again["mimical-1"]["status"] == "applied" and again["mimical-1"]["changed"] == 0, again
    assert on_head("systemctl show -p MainPID --value sovereign-router").strip() == pid
