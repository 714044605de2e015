"""Crafted variants of real output: the tolerance the parsers promise."""

from __future__ import annotations

from pathlib import Path

from sovereign.hw.parsers import (
    accel,
    cmdline,
    cpuinfo,
    dmesg,
    drm_mem,
    free,
    grub,
    ibstat,
    iommu,
    llama_bench,
    lscpu,
    lsmod,
    lspci,
    meminfo,
    modprobe,
    nvme_list,
    rdma_link,
    rocminfo,
    sensors,
    show_gids,
    ttm,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture(path: str) -> str:
    return (FIXTURES / path).read_text()


# --- CPU and memory ------------------------------------------------------------------
LSCPU_FULL = """Architecture:                            x86_64
CPU op-mode(s):                          32-bit, 64-bit
CPU(s):                                  32
On-line CPU(s) list:                     0-31
Vendor ID:                               AuthenticAMD
BIOS Vendor ID:                          Advanced Micro Devices, Inc.
Model name:                              AMD RYZEN AI MAX+ 395 w/ Radeon 8060S
BIOS Model name:                         AMD RYZEN AI MAX+ 395 w/ Radeon 8060S Unknown CPU @ 3.0GHz
Thread(s) per core:                      2
Core(s) per socket:                      16
Socket(s):                               1
Flags:                                   fpu vme avx512f avx512_bf16
"""


def test_lscpu_full_table_and_crlf():
    for text in (LSCPU_FULL, LSCPU_FULL.replace("\n", "\r\n")):
        cpu = lscpu.parse(text)
        assert cpu.model == "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"
        assert (cpu.threads, cpu.cores, cpu.sockets, cpu.vendor) == (32, 16, 1, "AuthenticAMD")
        assert "avx512f" in cpu.flags and cpu.problems == []


def test_lscpu_grepped_line_only():
    cpu = lscpu.parse(fixture("lscpu/danbev-gmktec-lscpu-modelname.txt"))
    assert cpu.model == "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S" and cpu.threads is None


def test_proc_cpuinfo_counts_threads_and_cores():
    block = ("processor\t: {n}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD RYZEN AI MAX+ 395\n"
             "physical id\t: 0\ncore id\t\t: {c}\ncpu cores\t: 16\nflags\t\t: fpu avx2\n\n")
    text = "".join(block.format(n=n, c=n % 16) for n in range(32))
    cpu = cpuinfo.parse(text)
    assert (cpu.threads, cpu.cores, cpu.sockets) == (32, 16, 1)
    assert cpu.flags == ["fpu", "avx2"] and cpu.vendor == "AuthenticAMD"


def test_free_bytes_and_spaces_vs_tabs():
    text = ("               total        used        free      shared  buff/cache   available\n"
            "Mem:     133143986176 12884901888 81604378624 4187593113 44023414784 120259084288\n"
            "Swap:      8589930496           0  8589930496\n")
    mem = free.parse(text)
    assert mem.total_bytes == 133143986176 and mem.available_bytes == 120259084288
    assert free.parse(text.replace("    ", "\t")).total_bytes == 133143986176
    assert free.parse("garbage").problems


def test_meminfo_unit_and_problem():
    mem = meminfo.parse("MemTotal:  1024 kB\nMemAvailable: 512 kB\nnonsense line\n")
    assert (mem.total_bytes, mem.available_bytes) == (1024 * 1024, 512 * 1024)
    assert mem.problems == ["line 3: not a meminfo line: 'nonsense line'"]


# --- kernel parameters ---------------------------------------------------------------
def test_proc_cmdline():
    result = cmdline.parse("BOOT_IMAGE=/vmlinuz ro iommu=pt ttm.pages_limit=32505856\n")
    assert result.params == {"BOOT_IMAGE": "/vmlinuz", "ro": None, "iommu": "pt",
                             "ttm.pages_limit": "32505856"}
    assert result.raw.startswith("BOOT_IMAGE")


def test_grub_concatenation_evaluates_in_order():
    text = (
        "# /etc/default/grub\n"
        "GRUB_DEFAULT=0\n"
        "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n'
        "GRUB_CMDLINE_LINUX=''\n"
        + fixture("etc-default-grub/elatov-vmguest-cat-grub-d-amdgpu-cfg.txt")
        + "# /etc/default/grub.d/90-sovereign.cfg\n"
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT iommu=pt amdgpu.gttsize=1"\n'
        'GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT} ttm.pages_limit=32505856"\n'
    )
    result = grub.parse(text)
    assert result.files == ["/etc/default/grub", "/etc/default/grub.d/amdgpu.cfg",
                            "/etc/default/grub.d/90-sovereign.cfg"]
    assert result.cmdline_linux["ttm.pages_limit"] == "16777216"
    assert result.cmdline_linux_default == {"quiet": None, "splash": None, "iommu": "pt",
                                            "amdgpu.gttsize": "1", "ttm.pages_limit": "32505856"}
    assert result.params["ttm.pages_limit"] == "32505856"  # _DEFAULT comes last
    assert result.problems == []


def test_grub_without_headers_and_with_grep_prefix():
    result = grub.parse(
        fixture("etc-default-grub/elatov-hpz2g1a-grep-grub-cmdline-default-iommu-pt.txt"))
    assert result.cmdline_linux_default == {"quiet": None, "iommu": "pt",
                                            "initcall_blacklist": "sysfb_init"}
    assert result.files == []
    extend = 'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX:+$GRUB_CMDLINE_LINUX }'
    grep = grub.parse(f'/etc/default/grub.d/x.cfg:{extend}a=1"\n'
                      f'/etc/default/grub.d/y.cfg:{extend}b=2"\n')
    assert grep.cmdline_linux == {"a": "1", "b": "2"} and len(grep.files) == 2


def test_grub_unevaluated_shell_is_reported():
    result = grub.parse('if [ -x /x ]; then\nGRUB_CMDLINE_LINUX="a=1\nb=2"\nX="open\n')
    assert result.cmdline_linux == {"a": "1", "b": "2"}
    assert any("not evaluated" in p for p in result.problems)
    assert any("unterminated" in p for p in result.problems)


def test_modprobe_without_headers_dash_names_and_unknown_lines():
    result = modprobe.parse("options amdgpu-foo x=1 y\nblacklist amdxdna\nwhatever this is\n")
    assert result.options == {"amdgpu_foo": {"x": "1", "y": None}}
    assert result.blacklist == ["amdxdna"]
    assert result.problems == ["line 3: unrecognised modprobe line: 'whatever this is'"]


def test_ttm_only_ttm_and_garbage():
    result = ttm.parse(
        "/sys/module/ttm/parameters/pages_limit:32505856\ngrep: x: Permission denied\n")
    assert result.module == "ttm" and result.pages_limit == 32505856
    assert len(result.problems) == 1
    both = ttm.parse(fixture("sys-module-ttm/synthetic-ttm-and-amdttm.txt"))
    assert both.module == "amdttm" and both.pages_limit == 32505856
    assert both.modules["ttm"]["pages_limit"] == "16428410"
    assert ttm.parse("").module is None


# --- dmesg ------------------------------------------------------------------------------
def test_dmesg_formats_agree():
    base = fixture("dmesg/rocm5562-ubuntu2510-deprecated-and-unusual.txt")
    lines = base.splitlines()
    bare = [line.split("] ", 1)[1] for line in lines]
    variants = {
        "timestamps": base,
        "none": "\n".join(bare),
        "journal": "\n".join(f"Mar 15 10:00:00 mimical-1 kernel: {m}" for m in bare),
        "journal -o cat": "\n".join(f"kernel: {m}" for m in bare),
        "dmesg -T": "\n".join(f"[Sat Mar 15 10:00:00 2026] {m}" for m in bare),
        "crlf+ansi": "\r\n".join(f"\x1b[32m{line}\x1b[0m" for line in lines),
    }
    for name, text in variants.items():
        facts = dmesg.parse(text)
        assert facts.gtt_mib == 128000, name
        assert facts.vram_mib == 512, name
        assert facts.gttsize_deprecated_warning, name
        assert facts.gtt_set_bytes == 134217728000, name


def test_dmesg_old_format_errors_and_iommu_pt():
    text = (
        "[    0.000000] Command line: BOOT_IMAGE=/vmlinuz iommu=pt\n"
        "[    0.5] iommu: Default domain type: Passthrough (set via kernel command line)\n"
        "[    3.6] [drm] amdgpu: 65536M of GTT memory ready.\n"
        "[  100.0] amdgpu 0000:c5:00.0: amdgpu: ring gfx_0.0.0 timeout, signaled seq=1\n"
        "[  101.0] amdxdna 0000:c6:00.1: probe with driver amdxdna failed with error -22\n"
    )
    facts = dmesg.parse(text)
    assert facts.gtt_mib == 65536 and facts.iommu_enabled and facts.iommu_passthrough
    assert facts.amdxdna_loaded is False
    assert len(facts.errors) == 2 and facts.errors[0].startswith("amdgpu 0000:c5:00.0")


def test_dmesg_nothing_relevant():
    facts = dmesg.parse("[ 1.0] usb 1-1: new device\n")
    assert facts.gtt_mib is None and facts.amdxdna_loaded is None and facts.errors == []


# --- PCI, modules, IOMMU ------------------------------------------------------------------
def test_lspci_tolerates_stderr_separators_and_domain():
    text = ("pcilib: Error reading /sys/bus/pci/devices/0000:00:08.3/label: Not permitted\n"
            + fixture("lspci-nnk/elatov-hpz2g1a-lspci-nn-grep-amdati-strixhalo-revd1.txt")
            + "--\n0000:01:00.0 Ethernet controller [0200]: Mellanox Technologies MT42822 "
            "BlueField-2 integrated ConnectX-6 Dx network controller [15b3:a2d6] (rev 01)\n"
            "\tKernel driver in use: mlx5_core\n")
    pci = lspci.parse(text)
    assert [d.bdf for d in pci.devices] == ["0000:c4:00.0", "0000:c4:00.1", "0000:01:00.0"]
    assert pci.devices[2].driver == "mlx5_core" and pci.problems == []
    assert pci.by_ids("1002", "1586")[0].rev == "d1"


def test_lspci_plain_without_ids():
    pci = lspci.parse("c5:00.0 Display controller: Advanced Micro Devices, Inc. Strix Halo\n")
    assert pci.devices[0].class_id is None and pci.devices[0].vendor_id is None
    assert pci.devices[0].class_name == "Display controller"


def test_lsmod_full_output():
    text = ("Module                  Size  Used by\namdxdna               151552  0\n"
            "gpu_sched              65536  2 amdxdna,amdgpu\n"
            "vfio_pci               16384  0 [permanent]\n")
    mods = lsmod.parse(text).modules
    assert mods["gpu_sched"].used_by == ["amdxdna", "amdgpu"]
    assert mods["gpu_sched"].use_count == 2
    assert mods["vfio_pci"].used_by == []


def test_iommu_script_formats():
    one_line = ("IOMMU Group 12 c5:00.0 Display controller [0380]: AMD Strix Halo [1002:1586]\n"
                "IOMMU Group 12 c5:00.1 Audio device [0403]: AMD [1002:1640]\n"
                "IOMMU group 13: 0000:c6:00.1 Signal processing controller\n")
    headed = ("IOMMU Group 12:\n\tc5:00.0 Display controller [0380]: AMD\n"
              "\tc5:00.1 Audio device [0403]: AMD\nIOMMU Group 13:\n\t0000:c6:00.1 NPU\n")
    for text in (one_line, headed):
        groups = iommu.parse(text).groups
        assert groups == {12: ["0000:c5:00.0", "0000:c5:00.1"], 13: ["0000:c6:00.1"]}
    raw = iommu.parse(fixture("iommu-groups/elatov-hpz2g1a-find-iommu-groups-type-l.txt"))
    assert list(raw.groups) == [5, 7, 15, 17, 23, 25]


# --- ROCm ------------------------------------------------------------------------------
def test_rocminfo_padding_ansi_and_crlf():
    text = fixture("rocminfo/danbev-gmktec-rocm71-full.txt")
    padded = "\r\n".join(
        f"\x1b[37m{line}\x1b[0m" + " " * 20 if ":" in line else line for line in text.splitlines()
    )
    for variant in (text, padded, text.replace("        ", "\t")):
        info = rocminfo.parse(variant)
        assert info.gfx_targets == ["gfx1151"] and len(info.agents) == 3
        assert info.gpus[0].marketing_name == "Radeon 8060S Graphics"
        assert info.problems == []


def test_rocminfo_without_npu_and_failures():
    text = fixture("rocminfo/danbev-gmktec-rocm71-full.txt").split("*******\nAgent 3")[0]
    info = rocminfo.parse(text)
    assert [a.device_type for a in info.agents] == ["CPU", "GPU"] and info.npu_agents == []
    not_loaded = rocminfo.parse(fixture("rocminfo/elatov-vmguest-rocminfo-rock-not-loaded.txt"))
    assert not_loaded.kfd_loaded is False and not_loaded.agents == []
    denied = rocminfo.parse(
        fixture("rocminfo/elatov-k8spod-rocminfo-kfd-operation-not-permitted.txt"))
    assert denied.kfd_loaded is True and "Operation not permitted" in (denied.error or "")


def test_drm_mem_info_and_accel():
    cards = drm_mem.parse(fixture("sys-drm-mem-info/synthetic-card1-124g-gtt.txt")).cards
    assert cards["card1"].gtt_total_bytes == 133143986176
    missing = accel.parse("ls: cannot access '/dev/accel': No such file or directory\n")
    assert missing.nodes == [] and missing.missing and missing.path == "/dev/accel"
    assert accel.parse("accel0\n").nodes == ["accel0"]


# --- storage, sensors --------------------------------------------------------------------
def test_nvme_list_json_v2_nested():
    text = ('{"Devices":[{"HostNQN":"x","Subsystems":[{"Controllers":[{"Namespaces":[{'
            '"NameSpace":"nvme0n1","PhysicalSize":4000787030016,"UsedBytes":1}]}]}]}]}')
    devices = nvme_list.parse(text).devices
    assert devices[0].node == "nvme0n1" and devices[0].size_bytes == 4000787030016


def test_sensors_c_locale_and_raw_mode():
    c_locale = "k10temp-pci-00c3\nAdapter: PCI adapter\nTctl:         +61.2 C\n"
    assert sensors.parse(c_locale).chips == {"k10temp-pci-00c3": {"Tctl": 61.2}}
    raw = ("amdgpu-pci-c500\nAdapter: PCI adapter\nedge:\n  temp1_input: 47.000\n"
           "  temp1_crit: 100.000\n")
    result = sensors.parse(raw)
    assert result.chips == {"amdgpu-pci-c500": {"edge": 47.0}} and result.max_temp_c == 47.0


# --- llama-bench --------------------------------------------------------------------------
def test_llama_bench_tolerates_noise_and_reports_bad_rows():
    text = fixture("llama-bench/kyuz0-rocm723-glm47flash-q8.txt")
    noisy = "\r\n".join("\x1b[1m" + line for line in text.splitlines())
    assert [r.tokens_per_s for r in llama_bench.parse(noisy).rows] == [913.36, 35.5]
    broken = text.replace("35.50 ± 0.00", "n/a")
    result = llama_bench.parse(broken)
    assert len(result.rows) == 1 and result.problems


def test_llama_bench_threads_column_cpu_build():
    text = ("| model | size | params | backend | threads | test | t/s |\n"
            "| --- | ---: | ---: | --- | ---: | ---: | ---: |\n"
            "| gemma3 270M Q8_0 | 271.81 MiB | 268.10 M | CPU | 8 | pp512 | 1480.21 ± 12.03 |\n")
    row = llama_bench.parse(text).rows[0]
    assert (row.threads, row.params, row.backend, row.ngl) == (8, 268_100_000, "CPU", None)


# --- RDMA -----------------------------------------------------------------------------------
def test_rdma_link_old_format_and_show_gids_ipv4():
    old = rdma_link.parse("1/1: mlx5_0/1: state ACTIVE physical_state LINK_UP netdev enp1s0f0np0\n")
    assert old.links[0].device == "mlx5_0" and old.links[0].netdev == "enp1s0f0np0"
    gids = show_gids.parse(
        "DEV\tPORT\tINDEX\tGID\t\t\t\t\tIPv4  \t\tVER\tDEV\n"
        "mlx5_0\t1\t3\t0000:0000:0000:0000:0000:ffff:0a00:0001\t10.0.0.1  \tv2\tenp1s0f0np0\n"
    )
    assert gids.ipv4_v2()[0].index == 3 and gids.ipv4_v2()[0].ipv4 == "10.0.0.1"


def test_ibstat_tabs_and_spaces_agree():
    spaces = ibstat.parse(fixture("ibstat/hurray0-cx4-ibstat-eth-and-ib.txt"))
    text = fixture("ibstat/hurray0-cx4-ibstat-eth-and-ib.txt")
    tabs = ibstat.parse(text.replace("        ", "\t"))
    assert spaces.model_dump() == tabs.model_dump()
    assert spaces.devices[0].ports[0].rate_gbps == 100
