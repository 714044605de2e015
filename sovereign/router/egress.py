"""The egress gate: the only way to a cloud tier, and every decision audited.

In order, a call is denied by:
0. the caller's policy (callers.py): `egress: deny`;
1. the kill switch (`egress.kill_switch: true`, or the file
   `egress.kill_switch_file`, default `<state>/egress.off`, existing: touch it
   to stop all egress at once, without a restart);
2. a provider not in `egress.allow_providers`;
3. a request whose domain is in `egress.never_leave_domains`, or that the
   privacy scan keeps in (`privacy.decide` over the assessment's findings:
   private data anywhere in the conversation, a never-leave domain's term in
   any message, or, with `egress.when_unsure: stay`, only weak signals); the
   reason names the detector or term and the message (role and index), never
   the value;
4. the daily budget (UTC day): calls, tokens (estimated before the call as
   prompt characters / 4 + max_tokens, settled with the provider's usage
   after it), and cost in USD when `daily_budget.cost_usd` is set; then the
   caller's own daily budget, when its policy sets one.
Otherwise it is allowed and its share of the budget reserved at once, so
concurrent requests cannot overrun it together.

Every decision, allowed or denied, becomes an `AuditEntry` (time, request,
caller, provider, domain, decision, reason, tokens, cost), written to the store (or
the outbox) and logged. This is the router's own policy; on the real cluster
the DPU's OVS rules and the hosts' nftables enforce egress underneath it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from sovereign.router.callers import LOCAL, Caller
from sovereign.router.config import EgressSettings, ProviderSettings
from sovereign.router.privacy import Finding, decide
from sovereign.router.store import AuditEntry

log = logging.getLogger(__name__)


class Budget(BaseModel):
    day: str
    calls: int
    tokens: int
    cost_usd: float
    calls_limit: int
    tokens_limit: int
    cost_limit_usd: float | None


class EgressDecision(BaseModel):
    allowed: bool
    provider: str
    domain: str
    reason: str
    uid: str
    request_id: str | None
    caller: str = LOCAL.name
    estimated_tokens: int = 0
    estimated_cost_usd: float = 0.0


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def day_start(day: str | None = None) -> float:
    d = dt.date.fromisoformat(day or _today())
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()


def cost_of(provider: ProviderSettings | None, prompt_tokens: int, completion_tokens: int) -> float:
    if provider is None:
        return 0.0
    return (prompt_tokens * provider.cost_per_1k_prompt_usd
            + completion_tokens * provider.cost_per_1k_completion_usd) / 1000.0


class KillSwitch(BaseModel):
    """The kill switch's state after an action: `off` makes the file, `on` removes it."""

    killed: bool
    file: str
    by_settings: bool = Field(description="egress.kill_switch is true: the file alone cannot turn egress on")


def kill_switch(settings: EgressSettings, path: Path, action: Literal["off", "on", "status"]) -> KillSwitch:
    """`off`: every cloud call is denied from the next request on, without a
    restart (the gate looks for the file on each call); `on`: the file is
    removed; `status`: neither."""
    if action == "off":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"egress switched off at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    elif action == "on":
        path.unlink(missing_ok=True)
    return KillSwitch(killed=settings.kill_switch or path.exists(), file=str(path),
                      by_settings=settings.kill_switch)


class EgressGate:
    def __init__(self, settings: EgressSettings, kill_file: Path,
                 usage_today: tuple[int, int, float] = (0, 0, 0.0)) -> None:
        self.settings = settings
        self.kill_file = kill_file
        self._lock = threading.Lock()
        self._day = _today()
        self._calls, self._tokens, self._cost = usage_today
        # Today's usage of each caller: [calls, tokens, cost].
        self._by_caller: dict[str, list[float]] = {}

    def restore(self, stored: tuple[int, int, float],
                by_caller: dict[str, tuple[int, int, float]] | None = None) -> None:
        """Add today's usage as the store has it (a router started while the store
        was away counted from zero, and its own calls are still in the outbox)."""
        with self._lock:
            self._roll()
            self._calls += stored[0]
            self._tokens += stored[1]
            self._cost += stored[2]
            for name, used in (by_caller or {}).items():
                mine = self._usage_of(name)
                for i in range(3):
                    mine[i] += used[i]

    def _roll(self) -> None:
        today = _today()
        if today != self._day:
            self._day, self._calls, self._tokens, self._cost = today, 0, 0, 0.0
            self._by_caller = {}

    def _usage_of(self, name: str) -> list[float]:
        """A caller's [calls, tokens, cost] of today, made on first use (the lock held)."""
        return self._by_caller.setdefault(name, [0, 0, 0.0])

    def caller_usage(self, name: str) -> tuple[int, int, float]:
        with self._lock:
            self._roll()
            c = self._by_caller.get(name, [0, 0, 0.0])
            return int(c[0]), int(c[1]), float(c[2])

    def _caller_over(self, caller: Caller, est_tokens: int, est_cost: float) -> str | None:
        p, used = caller.policy, self._by_caller.get(caller.name, [0, 0, 0.0])
        who = f"caller {caller.name!r}"
        if p.daily_calls is not None and used[0] + 1 > p.daily_calls:
            return (f"{who}: its daily call budget is spent ({int(used[0])}/{p.daily_calls} on {self._day} "
                    "UTC)")
        if p.daily_tokens is not None and used[1] + est_tokens > p.daily_tokens:
            return (f"{who}: its daily token budget would be exceeded ({int(used[1])} used + ~{est_tokens} > "
                    f"{p.daily_tokens} on {self._day} UTC)")
        if p.daily_cost_usd is not None and used[2] + est_cost > p.daily_cost_usd:
            return (f"{who}: its daily cost budget would be exceeded (${used[2]:.4f} + ${est_cost:.4f} > "
                    f"${p.daily_cost_usd})")
        return None

    def killed(self) -> str | None:
        if self.settings.kill_switch:
            return "kill switch on (egress.kill_switch)"
        if self.kill_file.exists():
            return f"kill switch on (file {self.kill_file} exists)"
        return None

    def budget(self) -> Budget:
        b = self.settings.daily_budget
        with self._lock:
            self._roll()
            return Budget(day=self._day, calls=self._calls, tokens=self._tokens, cost_usd=round(self._cost,
                                                                                                6),
                          calls_limit=b.calls, tokens_limit=b.tokens, cost_limit_usd=b.cost_usd)

    def check(self, provider: ProviderSettings, domain: str, est_tokens: int,
              request_id: str | None, findings: list[Finding] | None = None,
              caller: Caller = LOCAL) -> EgressDecision:
        s, b = self.settings, self.settings.daily_budget
        privacy = decide(findings or [], s.never_leave_domains, s.when_unsure)
        est_cost = cost_of(provider, est_tokens, 0)
        allowed, reason = False, ""
        with self._lock:
            self._roll()
            if caller.policy.egress == "deny":
                reason = f"caller {caller.name!r} may not use egress (its policy: egress deny)"
            elif (why := self.killed()) is not None:
                reason = why
            elif provider.name not in s.allow_providers:
                reason = f"provider {provider.name!r} is not in egress.allow_providers {s.allow_providers}"
            elif privacy.stay:
                reason = privacy.reason
            elif domain in s.never_leave_domains:
                reason = f"domain {domain!r} never leaves the cluster (egress.never_leave_domains)"
            elif self._calls + 1 > b.calls:
                reason = f"daily call budget spent ({self._calls}/{b.calls} on {self._day} UTC)"
            elif self._tokens + est_tokens > b.tokens:
                reason = (f"daily token budget would be exceeded ({self._tokens} used + ~{est_tokens} "
                          f"> {b.tokens} on {self._day} UTC)")
            elif b.cost_usd is not None and self._cost + est_cost > b.cost_usd:
                reason = (f"daily cost budget would be exceeded "
                          f"(${self._cost:.4f} + ${est_cost:.4f} > ${b.cost_usd})")
            elif (over := self._caller_over(caller, est_tokens, est_cost)) is not None:
                reason = over
            else:
                allowed = True
                self._calls += 1
                self._tokens += est_tokens
                self._cost += est_cost
                mine = self._usage_of(caller.name)
                mine[0] += 1
                mine[1] += est_tokens
                mine[2] += est_cost
                reason = (f"allowed: provider {provider.name!r} allow-listed, domain {domain!r} may leave, "
                          f"budget {self._calls}/{b.calls} calls, {self._tokens}/{b.tokens} tokens")
                if privacy.findings:
                    reason += f"; {privacy.reason}"
        decision = EgressDecision(allowed=allowed, provider=provider.name, domain=domain, reason=reason,
                                  uid=uuid.uuid4().hex, request_id=request_id, caller=caller.name,
                                  estimated_tokens=est_tokens,
                                  estimated_cost_usd=est_cost)
        log.info("egress %s: request %s caller=%s provider=%s domain=%s: %s", "ALLOW" if allowed else "DENY",
                 request_id, caller.name, provider.name, domain, reason)
        return decision

    def settle(self, decision: EgressDecision, tokens: int, cost: float) -> None:
        """Replace the reservation with the provider's reported usage."""
        if not decision.allowed:
            return
        with self._lock:
            if self._day == _today():
                self._tokens += tokens - decision.estimated_tokens
                self._cost += cost - decision.estimated_cost_usd
                mine = self._usage_of(decision.caller)
                mine[1] += tokens - decision.estimated_tokens
                mine[2] += cost - decision.estimated_cost_usd

    @staticmethod
    def audit_entry(decision: EgressDecision, tokens: int = 0, cost: float = 0.0,
                    outcome: str | None = None) -> AuditEntry:
        reason = decision.reason if outcome is None else f"{decision.reason}; {outcome}"
        return AuditEntry(uid=decision.uid, at=time.time(), request_id=decision.request_id,
                          caller=decision.caller, provider=decision.provider, domain=decision.domain,
                          decision="allow" if decision.allowed else "deny", reason=reason,
                          tokens=tokens, cost_usd=cost)
