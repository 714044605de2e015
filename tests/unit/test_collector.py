"""The collector (sovereign/hw/collector.py), run on this machine into tmp_path,
and reading its bundles back."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from unit_helpers import PROFILE, tar_bundle

from sovereign.errors import InventoryError
from sovereign.hw import collector
from sovereign.hw.bundle import Bundle, profile_dir
from sovereign.hw.collector import KERNEL_SIMULATED, NOT_IN_PROFILE, SOURCES, collect
from sovereign.hw.facts import Facts

NAMES = [name for name, *_ in SOURCES]
KINDS = {name: kind for name, kind, *_ in SOURCES}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("collect") / "bundle"
    return out, collect(out, host="node-under-test")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("collect-sim") / "bundle"
    return out, collect(out, simulated=True, profile=PROFILE, host="mimical-1")


def test_sources_are_unique_and_parsed() -> None:
    from sovereign.hw.parsers import PARSERS

    assert len(NAMES) == len(set(NAMES))
    assert set(KINDS.values()) <= {"identity", "kernel", "config", "tool"}
    # Every source has a parser.
    assert set(NAMES) - set(PARSERS) == set()


def test_manifest_has_an_entry_per_source(local: tuple[Path, dict]) -> None:
    out, returned = local
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(returned))
    assert manifest["host"] == "node-under-test"
    assert manifest["simulated"] is False and manifest["profile"] is None
    assert manifest["collector_version"] == collector.COLLECTOR_VERSION
    assert sorted(manifest["files"]) == sorted(NAMES)  # written with sort_keys
    for name, entry in manifest["files"].items():
        assert {"command", "exit_code", "stderr", "status", "kind"} <= set(entry), name
        assert entry["kind"] == KINDS[name]
        assert entry["status"] in {"ok", "failed", "missing"}, name
        if entry["status"] == "missing":
            assert entry["exit_code"] is None
            assert entry["reason"].endswith("not found on the node"), entry
            assert not (out / name).exists()
        else:
            assert isinstance(entry["exit_code"], int)
            assert (entry["exit_code"] == 0) == (entry["status"] == "ok")
            assert (out / name).is_file()


def test_a_real_source_is_captured(local: tuple[Path, dict]) -> None:
    out, manifest = local
    entry = manifest["files"]["os-release.txt"]
    if entry["status"] == "missing":
        pytest.skip("this machine has no /etc/os-release")
    assert entry == {"command": "cat /etc/os-release", "kind": "config", "simulated": False,
                     "exit_code": 0, "stderr": "", "status": "ok"}
    assert (out / "os-release.txt").read_text() == Path("/etc/os-release").read_text()


def test_the_bundle_reads_back(local: tuple[Path, dict]) -> None:
    out, _ = local
    bundle = Bundle.load(out)
    assert bundle.host == "node-under-test"
    assert set(bundle.manifest.files) == set(NAMES)
    facts = Facts(bundle)
    assert set(facts.summary()) >= {"cpu.model", "memory.total_bytes"}
    facts.problems()  # every parser accepts what this machine printed


def test_a_missing_tool_is_recorded_not_raised(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "SOURCES", [
        ("tool-x.txt", "tool", "sovereign-no-such-tool-x", "sovereign-no-such-tool-x --list"),
        ("file-x.txt", "config", str(tmp_path / "absent.conf"), f"cat {tmp_path}/absent.conf"),
        ("failing.txt", "tool", "sh", "echo partial; echo 'sh: oops' >&2; exit 3"),
        ("echo.txt", "tool", "sh", "echo hello"),
    ])
    manifest = collect(tmp_path / "b", host="h")
    files = manifest["files"]
    assert files["tool-x.txt"] == {
        "command": "sovereign-no-such-tool-x --list", "kind": "tool", "simulated": False,
        "exit_code": None, "stderr": "", "status": "missing",
        "reason": "sovereign-no-such-tool-x not found on the node"}
    assert files["file-x.txt"]["reason"] == f"{tmp_path}/absent.conf not found on the node"
    assert (files["failing.txt"]["status"], files["failing.txt"]["exit_code"]) == ("failed", 3)
    assert files["failing.txt"]["stderr"] == "sh: oops\n"
    assert (tmp_path / "b" / "failing.txt").read_text() == "partial\n"
    assert (files["echo.txt"]["status"], (tmp_path / "b" / "echo.txt").read_text()) == (
        "ok", "hello\n")
    bundle = Bundle.load(tmp_path / "b")
    assert bundle.text("tool-x.txt") is None
    assert bundle.why_missing("tool-x.txt") == (
        "source not collected (sovereign-no-such-tool-x not found on the node)")
    assert bundle.why_missing("failing.txt") == "failing.txt: `echo partial; echo 'sh: oops' " \
        ">&2; exit 3` failed: sh: oops"


def test_only_restricts_the_sources(tmp_path: Path) -> None:
    manifest = collect(tmp_path / "b", only=["os-release.txt", "proc-cmdline.txt"])
    assert set(manifest["files"]) == {"os-release.txt", "proc-cmdline.txt"}


# -- simulated hardware ------------------------------------------------------------------------

def test_simulated_identity_comes_from_the_profile(simulated: tuple[Path, dict]) -> None:
    out, manifest = simulated
    assert manifest["simulated"] is True and manifest["profile"] == str(PROFILE)
    assert manifest["host"] == "mimical-1"
    entry = manifest["files"]["lscpu.txt"]
    assert entry == {"command": f"recorded profile: {PROFILE / 'lscpu.txt'}", "kind": "identity",
                     "simulated": True, "exit_code": 0, "stderr": "", "status": "ok"}
    assert (out / "lscpu.txt").read_bytes() == (PROFILE / "lscpu.txt").read_bytes()


def test_simulated_identity_not_in_the_profile_is_missing(simulated: tuple[Path, dict]) -> None:
    _, manifest = simulated
    recorded = {p.name for p in PROFILE.iterdir()}
    for name, kind in KINDS.items():
        if kind == "identity" and name not in recorded:
            entry = manifest["files"][name]
            assert (entry["status"], entry["reason"]) == ("missing", NOT_IN_PROFILE), name


def test_simulated_kernel_sources_are_not_collected(simulated: tuple[Path, dict]) -> None:
    out, manifest = simulated
    entry = manifest["files"]["proc-cmdline.txt"]
    assert entry["status"] == "missing"
    assert entry["reason"] == KERNEL_SIMULATED
    assert "share the host kernel" in entry["reason"]
    assert not (out / "proc-cmdline.txt").exists()
    for name, kind in KINDS.items():
        if kind == "kernel":
            assert manifest["files"][name]["reason"] == KERNEL_SIMULATED, name


def test_simulated_config_is_collected_for_real(simulated: tuple[Path, dict]) -> None:
    out, manifest = simulated
    if not Path("/etc/default").is_dir():
        pytest.skip("this machine has no /etc/default")
    entry = manifest["files"]["etc-default-grub.txt"]
    assert (entry["status"], entry["simulated"], entry["exit_code"]) == ("ok", False, 0)
    assert entry["command"].startswith("for f in /etc/default/grub")
    assert (out / "etc-default-grub.txt").is_file()


def test_simulated_bundle_is_judged_on_the_profile(simulated: tuple[Path, dict]) -> None:
    from sovereign.checks import Expectations, Status, run_checks

    facts = Facts(Bundle.load(simulated[0]))
    cpu, mem, cmdline = run_checks(facts, Expectations(), ["CPU-MODEL", "MEM-TOTAL",
                                                           "KERNEL-CMDLINE"])
    assert (cpu.status, cpu.simulated) == (Status.PASS, True)
    assert (mem.status, mem.simulated) == (Status.PASS, True)
    assert cmdline.status is Status.SKIP and KERNEL_SIMULATED in cmdline.message


def test_profile_dir() -> None:
    assert profile_dir("strix-halo-128g") == PROFILE
    with pytest.raises(InventoryError) as caught:  # sovereign_hw_profile names it
        profile_dir("no-such-box")
    assert caught.value.hint == "known: strix-halo-128g" and caught.value.exit_code == 3


# -- the tarball transport -----------------------------------------------------------------------

def test_main_writes_a_tarball_that_loads(tmp_path: Path) -> None:
    archive = tmp_path / "mimical-1.tar.gz"
    assert collector.main(["--host", "mimical-1", "--tar", str(archive), "--simulated",
                           "--profile", str(PROFILE)]) == 0
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "manifest.json" in names and "lscpu.txt" in names
    bundle = Bundle.load(archive)
    assert bundle.path == tmp_path / "mimical-1"
    assert bundle.host == "mimical-1" and bundle.manifest.simulated


def test_a_hand_made_tarball_loads(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "lscpu.txt").write_text((PROFILE / "lscpu.txt").read_text())
    bundle = Bundle.load(tar_bundle(src, tmp_path / "x" / "node-7.tar.gz"))
    assert bundle.host == "node-7"  # no manifest: the name of the directory
    assert bundle.entry("lscpu.txt") is not None
    assert bundle.entry("lscpu.txt").command == "(no manifest)"
