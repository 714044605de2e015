from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from router_helpers import LAB

from sovereign.router.config import load_settings
from sovereign.service.settings import ServiceConfigError

PROD = LAB.parent / "production"


def test_lab_inventory_gives_the_ladder() -> None:
    s = load_settings(LAB)
    assert [(t.name, t.kind, t.threshold) for t in s.tiers] == [
        ("system-1", "local", 0.85), ("system-2", "local", 0.85), ("cloud", "cloud", 0.0)]
    assert s.tiers[0].model == "smollm2-135m" and s.tiers[0].scorer == "logprob"
    assert s.tiers[2].provider == "cloud-standin" and s.tiers[2].scorer == "accept"
    assert s.providers["cloud-standin"].simulated
    assert s.egress.never_leave_domains == ["financial"] and s.egress.daily_budget.calls == 50
    assert any("inventory" in src for src in s.source)


def test_local_tiers_reach_their_models_heads() -> None:
    s = load_settings(LAB)
    # smollm2-135m is headed by mimical-2, gemma-3-270m by mimical-1 (ansible_host, port).
    assert [t.endpoint for t in s.tiers[:2]] == ["http://10.213.77.12:8081", "http://10.213.77.11:8082"]


def test_the_local_key_comes_from_the_inventory_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = load_settings(LAB).local_key()
    assert key is not None and key.get_secret_value() == "lab-llama-key-not-secret"
    # Production keeps it in the vault: the router's unit passes it in the environment.
    assert load_settings(PROD).local_key() is None
    monkeypatch.setenv("SOVEREIGN_LLAMA_API_KEY", "from-the-unit")
    assert load_settings(PROD).local_key().get_secret_value() == "from-the-unit"


def test_a_model_without_port_leaves_the_tier_unconfigured_with_the_fix(tmp_path: Path) -> None:
    inv = tmp_path / "lab"
    shutil.copytree(LAB, inv)
    group_vars = inv / "group_vars/all.yml"
    data = yaml.safe_load(group_vars.read_text())
    del data["sovereign_models"][0]["port"]
    group_vars.write_text(yaml.safe_dump(data))
    s = load_settings(inv)
    assert s.tiers[0].endpoint is None
    why = s.tiers[0].unconfigured or ""
    assert "no `port`" in why and "sovereign_models" in why


def test_production_names_known_providers() -> None:
    s = load_settings(PROD)
    assert s.providers["anthropic"].base_url == "https://api.anthropic.com/v1"
    assert s.providers["anthropic"].api_key_env == "ANTHROPIC_API_KEY"
    assert [t.name for t in s.tiers] == ["system-1", "system-1.5", "system-2", "cloud"]


def test_file_overrides_one_field_of_one_tier(tmp_path: Path) -> None:
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"tiers": [{"name": "system-2", "endpoint": "http://127.0.0.1:1234",
                                            "api": "completion", "threshold": 0.6}],
                                 "listen": {"port": 9000}}))
    s = load_settings(LAB, f)
    t2 = s.tiers[1]
    assert (t2.endpoint, t2.api, t2.threshold, t2.model, t2.unconfigured) == (
        "http://127.0.0.1:1234", "completion", 0.6, "gemma-3-270m", None)
    assert s.tiers[0].endpoint == "http://10.213.77.12:8081"  # untouched
    assert s.listen.port == 9000


def test_environment_beats_file_beats_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"listen": {"port": 9000, "host": "127.0.0.2"},
                                 "egress": {"daily_budget": {"calls": 7}}}))
    monkeypatch.setenv("SOVEREIGN_ROUTER_LISTEN__PORT", "9100")
    monkeypatch.setenv("SOVEREIGN_ROUTER_EGRESS__KILL_SWITCH", "true")
    monkeypatch.setenv("SOVEREIGN_ROUTER_STORE__DSN", "postgresql://router:hunter2-secret@127.0.0.1/x")
    s = load_settings(LAB, f)
    assert s.listen.port == 9100 and s.listen.host == "127.0.0.2"
    assert s.egress.kill_switch is True
    assert s.egress.daily_budget.calls == 7 and s.egress.never_leave_domains == ["financial"]
    assert "hunter2-secret" not in str(s.public_dump()) and "hunter2-secret" not in repr(s)


def test_invalid_settings_name_the_key(tmp_path: Path) -> None:
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"tiers": [{"name": "system-1", "threshold": 1.5}],
                                 "store": {"backend": "postgres"},
                                 "bogus": 1}))
    with pytest.raises(ServiceConfigError) as exc:
        load_settings(LAB, f)
    text = "\n".join(exc.value.details)
    assert "tiers.0.threshold" in text and "bogus" in text and "dsn" in text
    assert exc.value.exit_code == 11  # a service's settings are invalid (docs/cli.md)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ServiceConfigError, match="cannot read"):
        load_settings(LAB, tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("tiers: [\n")
    with pytest.raises(ServiceConfigError, match="not valid YAML"):
        load_settings(LAB, bad)


def test_verifier_must_be_a_tier(tmp_path: Path) -> None:
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"tiers": [{"name": "system-1", "scorer": "verify", "verifier": "nope"}]}))
    with pytest.raises(ServiceConfigError, match="not valid"):
        load_settings(LAB, f)
    f.write_text(yaml.safe_dump({"tiers": [{"name": "system-1", "scorer": "verify"}]}))
    assert load_settings(LAB, f).tiers[0].verifier == "system-1"  # verifies itself by default


def test_the_deployed_configuration_has_no_secret_and_merges_overrides() -> None:
    from sovereign.inventory import load_inventory
    from sovereign.router.config import deployable_config

    data = deployable_config(load_inventory(LAB), {"listen": {"port": 9001},
                                                   "tiers": [{"name": "system-2", "threshold": 0.5}]})
    assert "local_api_key" not in data and "source" not in data
    assert "lab-llama-key-not-secret" not in yaml.safe_dump(data)
    assert data["listen"] == {"port": 9001}
    # Tiers merge by name: one field of one tier changes, the rest stay.
    assert [(t["name"], t.get("threshold")) for t in data["tiers"]] == [
        ("system-1", 0.85), ("system-2", 0.5), ("cloud", 0.0)]
    assert data["tiers"][1]["endpoint"] == "http://10.213.77.11:8082"


def test_a_postgres_store_is_deployed_without_its_dsn() -> None:
    """The DSN (a password in it) reaches the unit through its environment file only."""
    from sovereign.inventory import load_inventory
    from sovereign.router.config import deployable_config

    dsn = "postgresql://sovereign_router:pw-not-in-the-file@db:5432/sovereign_router"
    data = deployable_config(load_inventory(LAB), {"store": {"backend": "postgres", "dsn": dsn}})
    assert data["store"] == {"backend": "postgres"}
    assert "pw-not-in-the-file" not in yaml.safe_dump(data)
    assert deployable_config(load_inventory(LAB), {"store": {"backend": "postgres"}})["store"] == {
        "backend": "postgres"}


def test_a_bad_override_is_refused_with_its_key() -> None:
    from sovereign.inventory import load_inventory
    from sovereign.router.config import deployable_config

    with pytest.raises(ServiceConfigError) as caught:
        deployable_config(load_inventory(LAB), {"listen": {"port": "eighty"}})
    assert caught.value.details[0].startswith("listen.port:")


def test_the_router_roles_defaults_agree_with_the_service() -> None:
    """Ansible cannot read the service's defaults: where role router states one
    too (documented twice, as every role option), it must be the same value."""
    from sovereign.inventory.argspecs import role_default
    from sovereign.router.config import KNOWN_PROVIDERS, STANDIN_PORT, ListenSettings
    from sovereign.router.standin import StandinSettings

    assert role_default("router_port") == ListenSettings().port
    assert role_default("router_cloud_standin_port") == STANDIN_PORT == StandinSettings().listen.port
    assert KNOWN_PROVIDERS["cloud-standin"]["base_url"] == f"http://127.0.0.1:{STANDIN_PORT}/v1"
