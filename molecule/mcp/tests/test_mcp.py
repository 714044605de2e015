"""What role mcp leaves on mimical-1: sovereign-mcp.service sandboxed, its
secrets in the environment file alone, the door and the four read-only
tools, and a pin that no longer matches the code refusing the start."""

import json
import shlex

import testinfra

NODE = testinfra.get_host("podman://mimical-1")
UNIT = "sovereign-mcp"
CONFIG = "/etc/sovereign/mcp/mcp.yml"
KEY = "molecule-mcp-owner-key-not-secret"
# A pin of other definitions than the code's.
DRIFTED = "ab" * 32

# Runs in the container: POST tools/list, print the status and the body.
ASK = r'''
import json, sys, urllib.error, urllib.request
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
headers.update(json.loads(sys.argv[1]))
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
req = urllib.request.Request("http://127.0.0.1:8095/mcp", data=body, headers=headers, method="POST")
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
'''


def ask(**headers: str) -> dict:
    out = NODE.check_output(f"python3 -c {shlex.quote(ASK)} {shlex.quote(json.dumps(headers))}")
    return json.loads(out)


def test_the_unit_runs_sandboxed():
    assert NODE.service(UNIT).is_running and NODE.service(UNIT).is_enabled
    props = dict(line.split("=", 1) for line in NODE.check_output(
        f"systemctl show {UNIT} -p IPAddressDeny -p MemoryMax -p ProtectSystem -p NoNewPrivileges "
        "-p CapabilityBoundingSet -p PrivateDevices -p RestrictAddressFamilies").splitlines())
    assert props["ProtectSystem"] == "strict" and props["NoNewPrivileges"] == "yes", props
    assert set(props["IPAddressDeny"].split()) == {"0.0.0.0/0", "::/0"}, props
    assert props["MemoryMax"] == str(512 * 1024 * 1024), props
    assert props["CapabilityBoundingSet"] == "" and props["PrivateDevices"] == "yes", props
    assert set(props["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}, props


def test_the_key_is_in_the_environment_file_alone():
    assert KEY in NODE.file("/etc/sovereign/mcp/env").content_string
    assert NODE.file("/etc/sovereign/mcp/env").mode == 0o640
    assert KEY not in NODE.file(CONFIG).content_string
    assert KEY not in NODE.run(f"journalctl -u {UNIT} --no-pager -o cat").stdout


def test_the_door_refuses_a_missing_key_and_a_foreign_host():
    assert ask()["status"] == 401
    assert ask(Authorization="Bearer not-the-key-at-all-0000000000")["status"] == 401
    assert ask(Authorization=f"Bearer {KEY}", Host="rebinding.example")["status"] == 403


def test_the_four_read_only_tools_are_served():
    got = ask(Authorization=f"Bearer {KEY}")
    assert got["status"] == 200, got
    tools = got["body"]["result"]["tools"]
    names = sorted(t["name"] for t in tools)
    assert names == ["get_rules", "list_events", "query_crystals", "search_knowledge"]
    assert all(t["annotations"]["readOnlyHint"] for t in tools)


def test_a_drifted_pin_refuses_the_start():
    original = NODE.file(CONFIG).content_string
    try:
        NODE.check_output(f"sed -i 's/^tools_pin: .*/tools_pin: \"{DRIFTED}\"/' {CONFIG}")
        NODE.run(f"systemctl restart {UNIT}; sleep 3")
        # Exit 11 (a bad setting), the message naming both hashes.
        assert NODE.check_output(f"systemctl show -p ExecMainStatus --value {UNIT}").strip() == "11"
        log = NODE.check_output(f"journalctl -u {UNIT} --no-pager -o cat")
        assert f"drifted from the pin: tools_pin is {DRIFTED}" in log, log[-2000:]
        assert not NODE.service(UNIT).is_running
    finally:
        NODE.check_output(f"cat > {CONFIG} <<'EOF'\n{original}EOF")
        NODE.check_output(f"systemctl reset-failed {UNIT}; systemctl restart {UNIT}")
