"""What role kernel_params leaves on the simulated nodes (124 GiB pool).

mimical-1 has the inventory's settings; mimical-2 uses AMD's DKMS driver
(amdttm), the deprecated amdgpu.gttsize and an extra parameter.
"""

import pytest

PAGES = 124 * 262144  # 32505856 pages of 4 KiB

EXPECTED = {
    "mimical-1": {
        "module": "ttm",
        "cmdline": f"iommu=pt ttm.pages_limit={PAGES}",
    },
    "mimical-2": {
        "module": "amdttm",
        "cmdline": f"iommu=pt amdttm.pages_limit={PAGES} amdgpu.gttsize=131072 amd_pstate=active",
    },
}


@pytest.fixture
def expected(host):
    return EXPECTED[host.check_output("hostname")]


def test_grub_dropin_appends_pool_and_iommu(host, expected):
    f = host.file("/etc/default/grub.d/90-sovereign.cfg")
    assert f.is_file
    assert f.mode == 0o644
    assert f.content_string.startswith("#")  # ansible_managed header
    line = (
        'GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT:+$GRUB_CMDLINE_LINUX_DEFAULT }'
        f'{expected["cmdline"]}"'
    )
    assert line in f.content_string.splitlines()


def test_grub_dropin_is_shell_that_appends(host, expected):
    show = '. /etc/default/grub.d/90-sovereign.cfg; printf %s "$GRUB_CMDLINE_LINUX_DEFAULT"'
    assert host.check_output(f"GRUB_CMDLINE_LINUX_DEFAULT='quiet splash'; {show}") == (
        f"quiet splash {expected['cmdline']}"
    )
    assert host.check_output(f"unset GRUB_CMDLINE_LINUX_DEFAULT; {show}") == expected["cmdline"]


def test_gttsize_only_where_asked(host, expected):
    dropin = host.file("/etc/default/grub.d/90-sovereign.cfg").content_string
    assert ("amdgpu.gttsize" in dropin) == ("amdgpu.gttsize" in expected["cmdline"])
    assert "gttsize" not in host.file("/etc/modprobe.d/90-sovereign-ttm.conf").content_string


def test_ttm_module_options(host, expected):
    f = host.file("/etc/modprobe.d/90-sovereign-ttm.conf")
    assert f.mode == 0o644
    line = f"options {expected['module']} pages_limit={PAGES} page_pool_size={PAGES}"
    assert line in f.content_string.splitlines()
    # modprobe parses every file in /etc/modprobe.d: a syntax error shows here.
    assert line in host.check_output("modprobe --showconfig").splitlines()


def test_boot_tools_not_installed_on_simulated_hardware(host):
    assert not host.package("grub2-common").is_installed
    assert not host.package("initramfs-tools").is_installed


def test_no_reboot_marker_on_simulated_hardware(host):
    assert not host.file("/var/lib/sovereign/reboot-required").exists
