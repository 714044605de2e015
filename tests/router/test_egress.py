from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sovereign.router import egress as eg
from sovereign.router.config import BudgetSettings, EgressSettings, ProviderSettings
from sovereign.router.egress import EgressGate

P = ProviderSettings(name="cloud-standin", base_url="http://x", cost_per_1k_prompt_usd=1.0,
                     cost_per_1k_completion_usd=2.0)
OTHER = ProviderSettings(name="elsewhere", base_url="http://y")


def gate(tmp_path: Path, **kw) -> EgressGate:
    s = EgressSettings(allow_providers=["cloud-standin"], never_leave_domains=["financial"],
                       daily_budget=BudgetSettings(calls=3, tokens=1000, cost_usd=kw.pop("cost", None)), **kw)
    return EgressGate(s, tmp_path / "egress.off")


def test_allow_reserves_budget(tmp_path: Path) -> None:
    g = gate(tmp_path)
    d = g.check(P, "general", 100, "r1")
    assert d.allowed and "allow-listed" in d.reason
    assert g.budget().calls == 1 and g.budget().tokens == 100
    g.settle(d, 40, 0.05)
    assert g.budget().tokens == 40


@pytest.mark.parametrize(("provider", "domain", "needle"), [
    (OTHER, "general", "not in egress.allow_providers"),
    (P, "financial", "never leaves the cluster"),
])
def test_policy_denials(tmp_path: Path, provider: ProviderSettings, domain: str, needle: str) -> None:
    d = gate(tmp_path).check(provider, domain, 10, "r")
    assert not d.allowed and needle in d.reason


def test_kill_switch_setting_and_file(tmp_path: Path) -> None:
    assert "kill switch on (egress.kill_switch)" in gate(tmp_path, kill_switch=True).check(P, "general", 1,
                                                                                           "r").reason
    g = gate(tmp_path)
    (tmp_path / "egress.off").write_text("off")
    d = g.check(P, "general", 1, "r")
    assert not d.allowed and "egress.off exists" in d.reason
    (tmp_path / "egress.off").unlink()
    assert g.check(P, "general", 1, "r").allowed


def test_call_token_and_cost_budgets(tmp_path: Path) -> None:
    g = gate(tmp_path)
    assert not g.check(P, "general", 1001, "r").allowed  # tokens
    for _ in range(3):
        assert g.check(P, "general", 10, "r").allowed
    d = g.check(P, "general", 10, "r")
    assert not d.allowed and "daily call budget spent (3/3" in d.reason
    g2 = gate(tmp_path, cost=0.05)
    assert g2.check(P, "general", 40, "r").allowed  # $0.04
    d2 = g2.check(P, "general", 40, "r")
    assert not d2.allowed and "cost budget" in d2.reason


def test_budget_resets_on_a_new_utc_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = gate(tmp_path)
    for _ in range(3):
        g.check(P, "general", 10, "r")
    assert not g.check(P, "general", 10, "r").allowed
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    monkeypatch.setattr(eg, "_today", lambda: tomorrow)
    assert g.check(P, "general", 10, "r").allowed and g.budget().day == tomorrow


def test_audit_entry_carries_the_reason(tmp_path: Path) -> None:
    d = gate(tmp_path).check(P, "financial", 10, "req-1")
    e = EgressGate.audit_entry(d)
    assert (e.decision, e.provider, e.domain, e.request_id) == ("deny", "cloud-standin", "financial", "req-1")
    assert "never leaves" in e.reason
