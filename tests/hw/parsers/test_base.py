"""The shared helpers of the parsers."""

from __future__ import annotations

import pytest

from sovereign.hw.parsers.base import clean_lines, parse_kv_params, parse_size, strip_ansi


def test_strip_ansi_removes_escapes_and_orphaned_colour_codes():
    assert strip_ansi("\x1b[37m  Name:\x1b[0m gfx1151\x1b]0;title\x07") == "  Name: gfx1151"
    assert strip_ansi("[32mActive[0m") == "Active"
    assert strip_ansi("[drm] amdgpu: 1 [1002:1586]") == "[drm] amdgpu: 1 [1002:1586]"


def test_clean_lines_normalises():
    text = "pcilib: Cannot open /proc/bus/pci\r\na\tb  \r\n--\nlspci: Unable to load libkmod\n\n"
    assert clean_lines(text) == ["a       b"]
    assert clean_lines("x\ty", expand_tabs=False) == ["x\ty"]
    assert clean_lines("a\n\nb", keep_blank=False) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("124Gi", 124 * 1024**3),
        ("65536M", 65536 * 1024**2),
        ("126976 MiB", 126976 * 1024**2),
        ("4.0 TB", 4 * 10**12),
        ("512 GB", 512 * 10**9),
        ("8.0Gi", 8 * 1024**3),
        ("0B", 0),
        ("32.70 GiB", round(32.70 * 1024**3)),
        ("4096", 4096),
        ("1,5G", round(1.5 * 1024**3)),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_binary_si_and_errors():
    assert parse_size("112000 MB", si_decimal=False) == 112000 * 1024**2
    for bad in ("", "Gi", "12 parsecs", "i"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_parse_kv_params():
    params = parse_kv_params(
        'BOOT_IMAGE=/vmlinuz ro quiet iommu=pt amdgpu.gttsize=1 dyndbg="file x.c +p" '
        '"acpi_osi=!Windows 2020" amdgpu.gttsize=2 -- single'
    )
    assert params == {
        "BOOT_IMAGE": "/vmlinuz", "ro": None, "quiet": None, "iommu": "pt",
        "dyndbg": "file x.c +p", "acpi_osi": "!Windows 2020", "amdgpu.gttsize": "2",
        "single": None,
    }
    assert list(params)[-2:] == ["amdgpu.gttsize", "single"]  # last occurrence's place
    assert parse_kv_params("") == {}
    assert parse_kv_params('a="unterminated b') == {"a": "unterminated b"}
