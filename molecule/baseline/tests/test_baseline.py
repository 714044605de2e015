"""What role baseline leaves on mimical-1 (simulated hardware)."""

import pytest


@pytest.mark.parametrize(
    "package",
    ["dmidecode", "ethtool", "iproute2", "kmod", "lm-sensors", "nvme-cli", "pciutils", "util-linux"],
)
def test_diagnostic_tools_installed(host, package):
    assert host.package(package).is_installed


@pytest.mark.parametrize("command", ["lspci", "nvme", "sensors", "lsblk", "ethtool", "modinfo", "dmidecode"])
def test_collector_commands_on_path(host, command):
    assert host.exists(command)


@pytest.mark.parametrize("path", ["/var/lib/sovereign", "/etc/sovereign"])
def test_sovereign_directories(host, path):
    d = host.file(path)
    assert d.is_directory
    assert d.user == "root"
    assert d.mode == 0o755


def test_peers_named_by_fabric_address(host):
    hosts = host.file("/etc/hosts").content_string.splitlines()
    begin = hosts.index("# BEGIN sovereign cluster peers (fabric addresses)")
    end = hosts.index("# END sovereign cluster peers (fabric addresses)")
    assert hosts[begin + 1 : end] == [
        "10.213.78.11 mimical-1-fabric",
        "10.213.78.12 mimical-2-fabric",
    ]


def test_fabric_names_resolve(host):
    assert host.addr("mimical-2-fabric").ip_addresses == ["10.213.78.12"]
