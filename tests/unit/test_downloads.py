"""Downloads on this machine's files: a file that is not the pinned one is a
checksum mismatch naming both hashes (exit 13), never a file used anyway."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sovereign import downloads
from sovereign.errors import DownloadFailed, ExitCode


def _download(path: Path, sha256: str) -> downloads.Download:
    return downloads.Download(name="m", filename=path.name, sha256=sha256, path=str(path))


def test_a_pinned_file_verifies_and_is_hashed_once(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"weights")
    pin = hashlib.sha256(b"weights").hexdigest()
    first = downloads.ensure(_download(f, pin), tmp_path / "cache")
    assert (first.sha256, first.pinned, first.cached) == (pin, True, False)
    assert downloads.ensure(_download(f, pin), tmp_path / "cache").cached


def test_a_changed_file_is_a_mismatch_naming_both_hashes(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"weights")
    pin = hashlib.sha256(b"weights").hexdigest()
    downloads.ensure(_download(f, pin), tmp_path / "cache")
    f.write_bytes(b"damaged")  # another size: the recorded hash no longer stands for it
    with pytest.raises(downloads.ChecksumMismatch) as exc:
        downloads.ensure(_download(f, pin), tmp_path / "cache")
    assert exc.value.exit_code == ExitCode.DOWNLOAD_FAILED == 13
    assert pin in exc.value.message and hashlib.sha256(b"damaged").hexdigest() in exc.value.message


def test_a_missing_file_is_a_failed_download_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed) as exc:
        downloads.ensure(_download(tmp_path / "absent.gguf", "0" * 64), tmp_path / "cache")
    assert exc.value.exit_code == 13 and "source.path" in (exc.value.hint or "")
    assert not isinstance(exc.value, downloads.ChecksumMismatch)
