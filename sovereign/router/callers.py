"""Callers: who may ask the router, and what each one may do.

A caller is a name, a key and a policy. Clients send the key as OpenAI
clients do (`Authorization: Bearer <key>`); the router keeps only a salted
hash of it (HMAC-SHA-256 with a random 16-byte salt per key). Keys made here
are 256-bit random strings, so a slow password hash would add latency to every
request and no protection; a key from the vault must be at least 24
characters.

A policy only narrows what the router's settings allow:
- `scope`: `chat` (the OpenAI API) or `admin` (also `/metrics` and the detail
  of `/health`: tier endpoints, the store's address);
- `tiers`: the tiers it may use (default: all); a request naming another is
  refused (403), and the ladder skips the others;
- `egress`: `deny` and no request of this caller causes a cloud call;
- `crystals`: which stored cloud answers it may be served: `shared` (any,
  the default: a question answered once is not sent out again for anyone),
  `own` (only the ones its own requests produced), `none`;
- `rag`: `deny` and no request of this caller gets context from the RAG store
  (retrieval.py), whether it asks or a tier would add it;
- a daily budget (`daily_calls`, `daily_tokens`, `daily_cost_usd`) reserved
  by the egress gate under the same lock as the global one.

Keys live in two files, both read again whenever they change (a revoked key
is refused at its next request, without a restart):
- the operator's, `<state>/callers.json`, written by `sovereign router keys
  add|revoke|rotate` (0600, atomically, under a lock);
- the managed one, `auth.managed_file`, rendered by role `router` from
  `router_callers` (keys from the vault), which the CLI never writes; a
  managed key is revoked at once through the operator's file
  (`revoked_managed`) and for good in the inventory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

KEY_PREFIX = "sk-sov-"
MIN_KEY_CHARS = 24
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class CallerError(Exception):
    """A keys command that cannot be done (unknown name, a duplicate, a bad policy)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class Policy(BaseModel):
    """What a caller may do; every field only narrows the router's settings."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["chat", "admin"] = "chat"
    tiers: list[str] | None = Field(default=None, description="the tiers it may use (None: every tier)")
    egress: Literal["allow", "deny"] = "allow"
    crystals: Literal["shared", "own", "none"] = "shared"
    rag: Literal["allow", "deny"] = "allow"
    daily_calls: int | None = Field(default=None, ge=0)
    daily_tokens: int | None = Field(default=None, ge=0)
    daily_cost_usd: float | None = Field(default=None, ge=0)

    def may_use(self, tier: str) -> bool:
        return self.tiers is None or tier in self.tiers

    def describe(self) -> str:
        parts = [self.scope, "tiers " + (",".join(self.tiers) if self.tiers is not None else "all"),
                 f"egress {self.egress}", f"crystals {self.crystals}", f"rag {self.rag}"]
        budget = [f"{v:g} {k}" for k, v in (("calls", self.daily_calls), ("tokens", self.daily_tokens),
                                            ("USD", self.daily_cost_usd)) if v is not None]
        if budget:
            parts.append("daily " + ", ".join(budget))
        return "; ".join(parts)


class Caller(BaseModel):
    """An authenticated caller, as the ladder and the records see it."""

    name: str
    policy: Policy = Policy()

    @property
    def admin(self) -> bool:
        return self.policy.scope == "admin"


# Who asks when authentication is off (a loopback-only router) or through the
# router's own code (tests, `sovereign router calibrate`): everything allowed.
LOCAL = Caller(name="local", policy=Policy(scope="admin"))


class KeyEntry(Policy):
    name: str
    salt: str
    hash: str
    created_at: float
    revoked_at: float | None = None
    source: Literal["cli", "inventory"] = "cli"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"{v!r}: a caller's name is lower-case letters, digits, '.', '_' or '-'")
        return v

    def caller(self) -> Caller:
        return Caller(name=self.name, policy=Policy.model_validate(self.model_dump(include=set(
            Policy.model_fields))))

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(digest(self.salt, key), self.hash)


def digest(salt: str, key: str) -> str:
    return hmac.new(bytes.fromhex(salt), key.encode(), hashlib.sha256).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def entry_for(name: str, key: str, policy: Policy, *, salt: str | None = None,
              source: Literal["cli", "inventory"] = "cli", created_at: float | None = None) -> KeyEntry:
    if len(key) < MIN_KEY_CHARS:
        raise CallerError(f"caller {name!r}: its key is {len(key)} characters; at least {MIN_KEY_CHARS} are "
                          "needed", hint="make one with `python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))'`")
    salt = salt or secrets.token_hex(16)
    try:
        return KeyEntry(name=name, salt=salt, hash=digest(salt, key),
                        created_at=time.time() if created_at is None else created_at,
                        source=source, **policy.model_dump())
    except ValidationError as exc:
        raise CallerError(f"caller {name!r}: {exc.errors()[0]['msg']}") from None


def managed_entries(callers: dict[str, Any], salt_seed: str) -> list[dict[str, Any]]:
    """The managed file's entries from `router_callers` (name → policy and
    `key`), as role router renders them. The salt is derived from `salt_seed`
    (the host) and the name, so that a re-run with the same keys renders the
    same file and changes nothing."""
    out = []
    for name, spec in sorted((callers or {}).items()):
        if not isinstance(spec, dict):
            raise CallerError(f"router_callers.{name}: expected a mapping with `key` and the policy, got "
                              f"{type(spec).__name__}")
        spec = dict(spec)
        key = spec.pop("key", None)
        if not isinstance(key, str) or not key:
            var = "vault_router_key_" + name.replace("-", "_").replace(".", "_")
            raise CallerError(f"router_callers.{name}.key: missing",
                              hint=f"put the key in the vault and name it here: key: \"{{{{ {var} }}}}\"")
        try:
            policy = Policy.model_validate(spec)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CallerError(f"router_callers.{name}.{where}: {first['msg']}") from None
        salt = hashlib.sha256(f"sovereign router caller:{salt_seed}:{name}".encode()).hexdigest()[:32]
        out.append(entry_for(name, key, policy, salt=salt, source="inventory", created_at=0.0).model_dump())
    return out


class _File(BaseModel):
    keys: list[KeyEntry] = []
    revoked_managed: dict[str, float] = {}


class Registry:
    """The callers of both files; re-read when either changes (one stat each per request)."""

    def __init__(self, path: Path, managed: Path | None = None) -> None:
        self.path = path
        self.managed = managed
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] = ()
        self._entries: list[KeyEntry] = []
        self._revoked: dict[str, float] = {}
        self._cache: dict[bytes, Caller] = {}
        self.problem: str | None = None

    # ---------------------------------------------------------------- reading
    @staticmethod
    def _stat(path: Path | None) -> tuple[int, int] | None:
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    @staticmethod
    def _read(path: Path | None) -> _File:
        if path is None or not path.exists():
            return _File()
        data = json.loads(path.read_text() or "{}")
        if isinstance(data, list):  # the managed file is a plain list
            data = {"keys": data}
        return _File.model_validate(data)

    def _refresh(self) -> None:
        stamp = (self._stat(self.path), self._stat(self.managed))
        if stamp == self._stamp:
            return
        try:
            own, managed = self._read(self.path), self._read(self.managed)
        except (OSError, ValueError) as exc:
            # Keep the last good keys: a half-written or broken file must not open the door.
            self.problem = f"caller keys not re-read: {exc}"
            return
        self._entries = [*[e for e in managed.keys if e.name not in own.revoked_managed], *own.keys]
        self._revoked = own.revoked_managed
        self._cache.clear()
        self._stamp = stamp
        self.problem = None

    def count(self) -> int:
        with self._lock:
            self._refresh()
            return sum(1 for e in self._entries if e.revoked_at is None)

    def authenticate(self, key: str) -> Caller | None:
        """The caller whose live key this is, else None."""
        fingerprint = hashlib.sha256(key.encode()).digest()
        with self._lock:
            self._refresh()
            if (hit := self._cache.get(fingerprint)) is not None:
                return hit
            for e in self._entries:
                if e.revoked_at is None and e.matches(key):
                    caller = e.caller()
                    self._cache[fingerprint] = caller
                    return caller
        return None

    def entries(self) -> list[KeyEntry]:
        """Every key of both files, revoked ones included (a managed key revoked here shows when)."""
        own, managed = self._read(self.path), self._read(self.managed)
        shown = [e.model_copy(update={"revoked_at": own.revoked_managed.get(e.name)}) for e in managed.keys]
        return [*shown, *own.keys]

    # ---------------------------------------------------------------- writing (the CLI)
    @contextlib.contextmanager
    def _editing(self) -> Iterator[_File]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read(self.path)
            yield data
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(data.model_dump_json(indent=2))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def _managed_names(self) -> set[str]:
        return {e.name for e in self._read(self.managed).keys}

    def add(self, name: str, policy: Policy) -> str:
        """A new key for `name` (shown once: only its hash is kept)."""
        key = new_key()
        entry = entry_for(name, key, policy)
        if name in self._managed_names():
            raise CallerError(f"caller {name!r} is managed by the inventory (router_callers)",
                              hint="change it there, or pick another name")
        with self._editing() as data:
            if any(e.name == name and e.revoked_at is None for e in data.keys):
                raise CallerError(f"caller {name!r} already has a live key",
                                  hint=f"`sovereign router keys rotate {name}` replaces it")
            data.keys = [e for e in data.keys if e.name != name]
            data.keys.append(entry)
        return key

    def revoke(self, name: str) -> KeyEntry:
        now = time.time()
        managed = self._managed_names()
        with self._editing() as data:
            for i, e in enumerate(data.keys):
                if e.name == name and e.revoked_at is None:
                    data.keys[i] = e.model_copy(update={"revoked_at": now})
                    return data.keys[i]
            if name in managed and name not in data.revoked_managed:
                data.revoked_managed[name] = now
                entry = next(e for e in self._read(self.managed).keys if e.name == name)
                return entry.model_copy(update={"revoked_at": now})
        known = sorted({e.name for e in self.entries()})
        raise CallerError(f"no live key named {name!r}", hint=f"callers: {', '.join(known) or 'none'}")

    def rotate(self, name: str) -> str:
        """A new key for `name` with the same policy; the old one stops working at once."""
        if name in self._managed_names():
            raise CallerError(f"caller {name!r} is managed by the inventory (router_callers)",
                              hint="put a new key in the vault and run phase 7")
        key = new_key()
        with self._editing() as data:
            for i, e in enumerate(data.keys):
                if e.name == name and e.revoked_at is None:
                    policy = Policy.model_validate(e.model_dump(include=set(Policy.model_fields)))
                    data.keys[i] = entry_for(name, key, policy)
                    return key
        raise CallerError(f"no live key named {name!r}", hint="`sovereign router keys list` shows them")
