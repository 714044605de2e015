"""Kopia's JSON judged (no kopia binary here: not exercised for real). The
samples are written by hand after Kopia's documented output: a snapshot
manifest (`snapshot create/list --json`: id, source, startTime, stats with
fileCount and errorCount, tags) and verify's error count."""

from __future__ import annotations

from sovereign.backup.engines import judge_kopia_verify, kopia_snapshot

MANIFEST = {
    "id": "k5b1d0c8a9e7f6", "source": {"host": "mimical-1", "userName": "root", "path": "/etc/sovereign"},
    "description": "", "startTime": "2026-12-02T03:00:00.123Z", "endTime": "2026-12-02T03:00:02.5Z",
    "stats": {"totalSize": 4096, "excludedTotalSize": 0, "fileCount": 12, "cachedFiles": 0,
              "nonCachedFiles": 12, "dirCount": 3, "excludedFileCount": 0, "excludedDirCount": 0,
              "ignoredErrorCount": 0, "errorCount": 0},
    "rootEntry": {"name": "sovereign", "type": "d", "summ": {"size": 4096, "files": 12, "dirs": 3}},
    "tags": {"tag:sovereign-backup": "yes", "tag:db": "knowledge"},
}
EMPTY = {**MANIFEST, "id": "k0", "stats": {**MANIFEST["stats"], "fileCount": 0, "totalSize": 0}}


def test_a_manifest_becomes_a_snapshot() -> None:
    snap = kopia_snapshot(MANIFEST)
    assert (snap.id, snap.files, snap.bytes, snap.paths) == ("k5b1d0c8a9e7f6", 12, 4096, ["/etc/sovereign"])
    assert set(snap.tags) == {"sovereign-backup:yes", "db:knowledge"}


def test_verify_passes_only_with_no_errors_over_files() -> None:
    ok = judge_kopia_verify({"errorCount": 0}, [kopia_snapshot(MANIFEST)], 10)
    assert ok.ok and ok.expected_files == 12


def test_zero_errors_over_zero_files_is_a_failure() -> None:
    none = judge_kopia_verify({"errorCount": 0}, [kopia_snapshot(EMPTY)], 10)
    assert not none.ok and "zero expected files" in none.message
    assert not judge_kopia_verify({"errorCount": 0}, [], 10).ok


def test_errors_or_no_count_fail() -> None:
    bad = judge_kopia_verify({"errorCount": 2}, [kopia_snapshot(MANIFEST)], 10)
    assert not bad.ok and bad.errors == 2
    assert not judge_kopia_verify({}, [kopia_snapshot(MANIFEST)], 10).ok  # exited 0, said nothing
    assert not judge_kopia_verify(None, [kopia_snapshot(MANIFEST)], 10).ok
