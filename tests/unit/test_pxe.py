"""The PXE path: per-node autoinstall rendered from the inventory."""

from __future__ import annotations

from pathlib import Path

import yaml

from sovereign.cli.main import app

PXE = """
sovereign_pxe:
  http_url: http://192.168.50.2:8080
  gateway: 192.168.50.1
  dns: [192.168.50.1]
  ssh_authorized_keys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly owner@laptop
"""


def _with_pxe(lab_copy: Path) -> Path:
    all_vars = lab_copy / "group_vars" / "all.yml"
    all_vars.write_text(all_vars.read_text() + PXE)
    for n, mac in ((1, "9c:6b:00:00:00:01"), (2, "9c:6b:00:00:00:02")):
        hv = lab_copy / "host_vars" / f"mimical-{n}.yml"
        hv.write_text(hv.read_text() + f'sovereign_pxe_mac: "{mac}"\nsovereign_pxe_disk: /dev/nvme0n1\n')
    return lab_copy


def test_render_writes_valid_autoinstall_per_node(lab_copy, runner, tmp_path):
    inv = _with_pxe(lab_copy)
    out = tmp_path / "pxe"
    result = runner.invoke(app, ["pxe", "render", "-i", str(inv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load((out / "nodes" / "mimical-2" / "user-data").read_text())
    auto = data["autoinstall"]
    assert auto["identity"]["hostname"] == "mimical-2"
    assert auto["ssh"]["allow-pw"] is False
    assert auto["ssh"]["authorized-keys"][0].startswith("ssh-ed25519 ")
    boot = auto["network"]["ethernets"]["boot"]
    assert boot["match"]["macaddress"] == "9c:6b:00:00:00:02"
    assert boot["addresses"] == ["10.213.77.12/24"]
    assert auto["storage"]["layout"]["match"]["path"] == "/dev/nvme0n1"
    grub = (out / "grub" / "grub.cfg-01-9c-6b-00-00-00-02").read_text()
    assert "ds=nocloud-net\\;s=http://192.168.50.2:8080/nodes/mimical-2/" in grub
    assert (
        yaml.safe_load((out / "nodes" / "mimical-1" / "meta-data").read_text())["local-hostname"]
        == "mimical-1"
    )


def test_limit_renders_one_node(lab_copy, runner, tmp_path):
    out = tmp_path / "pxe"
    result = runner.invoke(
        app, ["pxe", "render", "-i", str(_with_pxe(lab_copy)), "--out", str(out), "--limit", "mimical-1"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "nodes" / "mimical-1" / "user-data").exists()
    assert not (out / "nodes" / "mimical-2").exists()


def test_missing_pxe_keys_name_the_file_and_key(lab_copy, runner, tmp_path):
    result = runner.invoke(app, ["pxe", "render", "-i", str(lab_copy), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3
    expected = "host_vars/mimical-1.yml: sovereign_pxe_mac: required to install mimical-1 over PXE"
    assert expected in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_bad_mac_is_an_inventory_error(lab_copy, runner, tmp_path):
    inv = _with_pxe(lab_copy)
    hv = inv / "host_vars" / "mimical-1.yml"
    hv.write_text(hv.read_text().replace("9c:6b:00:00:00:01", "not-a-mac"))
    result = runner.invoke(app, ["inventory", "check", "-i", str(inv)])
    assert result.exit_code == 3
    assert "lab/host_vars/mimical-1.yml: sovereign_pxe_mac:" in result.stderr
