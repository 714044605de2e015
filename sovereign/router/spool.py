"""The spool: writes the store could not take, kept on disk and replayed later.

Each record is one JSON line (`{"kind": ..., "payload": ...}`) appended to a
segment file under `<state>/spool/` and fsynced before the request returns,
so a crash after the answer loses nothing. `replay()` applies the segments in
order; a segment is deleted only once every record of it is in the store (the
store's inserts are idempotent, so a segment replayed twice is harmless).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from sovereign.router.store.base import Attempt, AuditEntry, Crystal, Label, SqlStore, StoreUnavailable

log = logging.getLogger(__name__)

KINDS = ("crystal", "attempts", "labels", "audit", "hit")


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._segment = self.folder / f"spool-{time.time_ns()}-{os.getpid()}.jsonl"

    def append(self, kind: str, payload: Any) -> None:
        assert kind in KINDS, kind
        line = json.dumps({"kind": kind, "at": time.time(), "payload": payload}, ensure_ascii=False)
        with self._lock:
            fd = os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        log.warning("store unavailable: %s record spooled to %s", kind, self._segment.name)

    # The helpers below turn records into JSON-safe payloads.
    def crystal(self, c: Crystal) -> None:
        d = c.model_dump()
        d["embedding"] = base64.b64encode(c.embedding).decode() if c.embedding else None
        self.append("crystal", d)

    def attempts(self, attempts: list[Attempt]) -> None:
        self.append("attempts", [a.model_dump() for a in attempts])

    def labels(self, labels: list[Label]) -> None:
        self.append("labels", [lb.model_dump() for lb in labels])

    def audit(self, entries: list[AuditEntry]) -> None:
        self.append("audit", [e.model_dump() for e in entries])

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob("spool-*.jsonl"))

    def pending(self) -> int:
        total = 0
        for seg in self.segments():
            try:
                with seg.open("rb") as fh:
                    total += sum(1 for line in fh if line.strip())
            except OSError:
                continue
        return total

    @staticmethod
    def _apply(store: SqlStore, kind: str, payload: Any) -> None:
        if kind == "crystal":
            emb = payload.get("embedding")
            payload["embedding"] = base64.b64decode(emb) if emb else None
            store.put_crystal(Crystal.model_validate(payload))
        elif kind == "attempts":
            store.put_attempts([Attempt.model_validate(a) for a in payload])
        elif kind == "labels":
            store.label_attempts([Label.model_validate(lb) for lb in payload])
        elif kind == "audit":
            store.put_audit([AuditEntry.model_validate(e) for e in payload])
        elif kind == "hit":
            store.record_hit(payload["id"], payload["at"])

    def replay(self, store: SqlStore) -> tuple[int, int]:
        """Apply spooled records; return (applied, still pending). Stops at the
        first failure (the store went away again) and keeps the rest."""
        applied = 0
        with self._lock:
            for seg in self.segments():
                lines = [ln for ln in seg.read_text().splitlines() if ln.strip()]
                done = 0
                try:
                    for line in lines:
                        rec = json.loads(line)
                        self._apply(store, rec["kind"], rec["payload"])
                        done += 1
                except StoreUnavailable as exc:
                    rest = lines[done:]
                    tmp = seg.with_suffix(".tmp")
                    tmp.write_text("".join(ln + "\n" for ln in rest))
                    tmp.replace(seg)
                    applied += done
                    log.info("spool replay stopped after %d record(s): %s", applied, exc.message)
                    return applied, self._count_unlocked()
                except (ValueError, KeyError) as exc:
                    bad = seg.with_suffix(".bad")
                    seg.replace(bad)
                    log.error("spool segment %s is unreadable (%s); kept as %s", seg.name, exc, bad.name)
                    continue
                applied += done
                seg.unlink()
                if seg == self._segment:
                    self._segment = self.folder / f"spool-{time.time_ns()}-{os.getpid()}.jsonl"
        if applied:
            log.info("spool replayed: %d record(s) written to the store", applied)
        return applied, 0

    def _count_unlocked(self) -> int:
        return sum(len([ln for ln in s.read_text().splitlines() if ln.strip()]) for s in self.segments())
