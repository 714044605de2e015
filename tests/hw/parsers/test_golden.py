"""Golden tests: real captures (tests/hw/fixtures, sources in SOURCES.md) against
the expected models beside them (`NAME.expected.json`, the key fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sovereign.hw.parsers import PARSERS
from sovereign.hw.parsers.base import ParseResult

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CAPTURES = sorted(FIXTURES.glob("*/*.txt"))
BY_STEM = {name.rsplit(".", 1)[0]: name for name in PARSERS}


def assert_subset(expected: Any, actual: Any, path: str = "$") -> None:
    """Every key in `expected` has the same value in `actual`; lists match item by item."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}: missing key {key!r}"
            assert_subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items, want {len(expected)}"
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(want, got, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def test_every_parser_has_a_golden_capture():
    covered = {p.parent.name for p in CAPTURES}
    missing = sorted(set(BY_STEM) - covered)
    assert not missing, f"no golden capture for {missing}"


def test_every_capture_has_expected_output_and_a_source():
    sources = (FIXTURES / "SOURCES.md").read_text()
    for capture in CAPTURES:
        assert capture.with_suffix(".expected.json").exists(), capture
        assert f"{capture.parent.name}/{capture.name}" in sources, f"{capture} not in SOURCES.md"


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(capture: Path):
    parser = PARSERS[BY_STEM[capture.parent.name]]
    result = parser(capture.read_text())
    assert isinstance(result, ParseResult)
    expected = json.loads(capture.with_suffix(".expected.json").read_text())
    assert_subset(expected, result.model_dump(mode="json"))


# A few facts spelled out, so that a wrong expected file cannot hide them.
def _parse(stem: str, name: str) -> Any:
    return PARSERS[BY_STEM[stem]]((FIXTURES / stem / name).read_text())


def test_key_facts_of_the_strix_halo_captures():
    rocm = _parse("rocminfo", "danbev-gmktec-rocm71-full.txt")
    assert rocm.kfd_loaded is True and rocm.gfx_targets == ["gfx1151"]
    assert [a.device_type for a in rocm.agents] == ["CPU", "GPU", "DSP"]
    assert rocm.gpus[0].pool_bytes == 64 * 1024**3 and rocm.gpus[0].compute_units == 40
    assert rocm.npu_agents[0].name == "aie2"
    assert rocm.problems == []

    assert _parse("free", "gtr9pro-free-h-124Gi.txt").total_bytes == 124 * 1024**3
    dmesg = _parse("dmesg", "rocm5562-ubuntu2510-deprecated-and-unusual.txt")
    assert dmesg.gtt_mib == 128000 and dmesg.gttsize_deprecated_warning
    assert dmesg.ttm_size_bytes == 65867993088
    grub = _parse("etc-default-grub", "elatov-vmguest-cat-grub-d-amdgpu-cfg.txt")
    assert grub.params["ttm.pages_limit"] == "16777216"
    bench = _parse("llama-bench", "kyuz0-rpc-rocm644-glm46-forcemmq.txt")
    assert bench.rows[1].backend == "ROCm,RPC" and bench.rows[1].tokens_per_s == 8.72
    rpc = _parse("rpc-server", "lhl-vulkan-rpc-server-startup.txt")
    assert (rpc.host, rpc.port, rpc.memory_bytes) == ("0.0.0.0", 50053, 112000 * 1024**2)
