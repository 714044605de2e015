"""What role rocm leaves on mimical-1 (simulated hardware, ROCm 7.2.2)."""

import pytest


def test_sources_written_disabled(host):
    f = host.file("/etc/apt/sources.list.d/rocm.sources")
    assert f.mode == 0o644
    lines = f.content_string.splitlines()
    for line in (
        "Types: deb",
        "URIs: https://repo.radeon.com/rocm/apt/7.2.2",
        "Suites: jammy",  # Debian 12
        "Components: main",
        "Signed-By: /etc/apt/keyrings/rocm.gpg",
        "Enabled: no",  # repo.radeon.com is unreachable on simulated hardware
    ):
        assert line in lines


def test_pin(host):
    f = host.file("/etc/apt/preferences.d/rocm-pin-600")
    lines = f.content_string.splitlines()
    assert "Package: *" in lines
    assert "Pin: origin repo.radeon.com" in lines
    assert "Pin-Priority: 600" in lines


def test_apt_accepts_sources_and_pin(host):
    # apt-cache parses sources.list.d and preferences.d; malformed files fail here.
    cmd = host.run("apt-cache policy")
    assert cmd.rc == 0, cmd.stderr
    assert "E:" not in cmd.stderr and "W:" not in cmd.stderr, cmd.stderr


def test_no_rocm_packages_on_simulated_hardware(host):
    assert not host.package("rocm-hip-runtime").is_installed
    assert not host.file("/etc/apt/keyrings/rocm.gpg").exists


@pytest.mark.parametrize("group", ["render", "video"])
def test_gpu_user_in_group(host, group):
    assert host.group(group).exists
    assert group in host.user("sovereign").groups


def test_gpu_user_is_system_user(host):
    assert host.user("sovereign").uid < 1000


def test_hsa_override_removed_and_the_rest_kept(host):
    # prepare.yml seeded both files with HSA_OVERRIDE_GFX_VERSION=11.0.0.
    cmd = host.run("grep -rs HSA_OVERRIDE_GFX_VERSION /etc/environment /etc/profile.d")
    assert cmd.rc == 1, cmd.stdout
    assert host.file("/etc/environment").content_string == "LANG=C.UTF-8\n"
    assert host.file("/etc/profile.d/rocm-gfx.sh").content_string == 'export PATH="$PATH:/opt/rocm/bin"\n'
