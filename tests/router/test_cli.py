"""`sovereign router ...` through typer's CliRunner."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from router_helpers import LAB, tiers_config
from typer.testing import CliRunner

from sovereign.cli import render
from sovereign.cli.main import app
from sovereign.router.calibrate import CalibrationSet
from sovereign.router.config import load_settings
from sovereign.router.crystals import exact_key, system_key
from sovereign.router.store import Attempt, AuditEntry, Crystal, open_store


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(render.console, "width", 200)
    monkeypatch.setattr(render.err_console, "width", 200)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["router", *args])
    return result.exit_code, result.output


@pytest.fixture
def seeded() -> str:
    settings = load_settings(LAB)
    store = open_store(settings)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    cid = uuid.uuid4().hex
    store.put_crystal(Crystal(id=cid, created_at=time.time(), exact_key=exact_key(msgs), domain="general",
                              single_turn=True, system_key=system_key(msgs), prompt=msgs[0]["content"],
                              messages=msgs, answer="Paris.", provider="cloud-standin", model="m",
                              prompt_tokens=8,
                              completion_tokens=2, raw_response={"id": "raw-1", "simulated": True}))
    store.put_attempts([Attempt(request_id="req-abc", seq=1, at=time.time(), tier="system-1",
                                model="smollm2-135m",
                                kind="local", scorer="logprob", raw_score=0.4, score=0.4, latency_ms=30,
                                prompt_tokens=9, completion_tokens=4, decision="below-threshold",
                                reason="raw logprob score 0.400 < threshold 0.85", label=False,
                                label_source="cloud")])
    store.put_audit([AuditEntry(uid="u1", at=time.time(), request_id="req-abc", provider="cloud-standin",
                                domain="financial", decision="deny",
                                reason="domain 'financial' never leaves")])
    store.close()
    return cid


def test_crystals_list_show_forget(runner: CliRunner, seeded: str) -> None:
    code, out = run(runner, "crystals", "list")
    assert code == 0 and "1 crystal(s)" in out and seeded[:12] in out and "Paris." in out
    code, out = run(runner, "crystals", "list", "--json")
    data = json.loads(out)
    assert data["total"] == 1 and data["crystals"][0]["id"] == seeded
    code, out = run(runner, "crystals", "show", seeded[:8], "--json")
    shown = json.loads(out)
    assert code == 0 and shown["raw_response"] == {"id": "raw-1", "simulated": True}
    assert shown["messages"][0]["content"] == "What is the capital of France?" and shown["prompt_tokens"] == 8
    code, out = run(runner, "crystals", "show", seeded)
    assert code == 0 and "raw response" in out and "raw-1" in out
    code, out = run(runner, "crystals", "forget", seeded)
    assert code == 0 and f"forgot crystal {seeded}" in out
    code, out = run(runner, "crystals", "show", seeded)
    assert code == 1 and "no crystal" in out and "crystals list" in out


def test_attempts_and_audit(runner: CliRunner, seeded: str) -> None:
    code, out = run(runner, "attempts", "--request", "req-abc", "--json")
    [a] = json.loads(out)
    assert code == 0 and (a["tier"], a["decision"], a["label"]) == ("system-1", "below-threshold", False)
    code, out = run(runner, "attempts")
    assert code == 0 and "below-threshold" in out and "0.400 raw" in out
    code, out = run(runner, "audit")
    assert code == 0 and "deny" in out and "never leaves" in out
    assert json.loads(run(runner, "audit", "--json")[1])[0]["domain"] == "financial"


def test_egress_kill_switch(runner: CliRunner) -> None:
    path = load_settings(LAB).kill_switch_path()
    assert "on (policy applies)" in run(runner, "egress", "status")[1]
    assert run(runner, "egress", "off")[0] == 0 and path.exists()
    assert "OFF" in run(runner, "egress", "status")[1]
    assert run(runner, "egress", "on")[0] == 0 and not path.exists()
    code, out = run(runner, "egress", "sideways")
    assert code == 1 and "use off, on or status" in out


def test_config_masks_secrets(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVEREIGN_ROUTER_STORE__DSN", "postgresql://u:pa55-word-x@127.0.0.1/db")
    monkeypatch.setenv("SOVEREIGN_ROUTER_PROVIDERS__CLOUD-STANDIN__API_KEY", "sk-should-not-print")
    code, out = run(runner, "config", "--json")
    assert code == 0 and "pa55-word-x" not in out and "sk-should-not-print" not in out
    data = json.loads(out)
    assert data["store"]["dsn"] == "**********"
    # The llama-servers' key, plain in the lab inventory, is masked too.
    assert data["local_api_key"] == "**********" and "lab-llama-key-not-secret" not in out
    code, out = run(runner, "config")
    assert code == 0 and "system-1" in out and "egress: allow" in out
    # The local tiers' endpoints come from the heads and ports of sovereign_models.
    assert "http://10.213.77.12:8081" in out and "http://10.213.77.11:8082" in out


def test_invalid_config_exits_11(runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "bad.yml"
    f.write_text(yaml.safe_dump({"listen": {"port": "not-a-port"}}))
    code, out = run(runner, "config", "--config", str(f))
    assert code == 11 and "listen.port" in out and "hint:" in out


def test_calibrate_from_the_attempts(runner: CliRunner) -> None:
    store = open_store(load_settings(LAB))
    rng = np.random.default_rng(7)
    atts = []
    for i in range(120):
        truth = rng.uniform(0.1, 0.7)
        raw = float(np.clip(0.55 + 0.4 * truth + rng.normal(0, 0.03), 0.01, 0.99))
        atts.append(Attempt(request_id=f"r{i}", seq=1, at=time.time(), tier="system-1", kind="local",
                            scorer="logprob", raw_score=raw, score=raw, decision="below-threshold",
                            label=bool(rng.uniform() < truth), label_source="cloud"))
    store.put_attempts(atts)
    store.close()
    code, out = run(runner, "calibrate", "--json")
    assert code == 0, out
    report = json.loads(out)
    [c] = report["fitted"]
    assert c["tier"] == "system-1" and c["n"] == 120 and c["ece_calibrated"] < c["ece_raw"]
    assert c["ece_calibrated_cv"] < c["ece_raw"]
    cal = CalibrationSet.load(load_settings(LAB).calibration_path())
    # A raw 0.8 means ~0.62 here (truth = (raw - 0.55) / 0.4): the calibrated value says so.
    assert cal.apply("system-1", "logprob", 0.8) == pytest.approx(0.62, abs=0.12)
    code, out = run(runner, "calibrate", "--method", "isotonic", "--dry-run")
    assert code == 0 and "ECE raw" in out and "dry run" in out
    assert run(runner, "calibrate", "--method", "magic")[0] == 1


def test_calibrate_with_labelled_examples_on_real_tiers(runner: CliRunner, smol_server, gemma_server,
                                                       tmp_path: Path) -> None:
    cfg = tmp_path / "r.yml"
    cfg.write_text(yaml.safe_dump(tiers_config(smol_server, gemma_server, None)))
    examples = tmp_path / "examples.jsonl"
    qa = [("What is the capital of France?", "Paris"), ("What is 2 + 2?", "4"),
          ("What color is the sky on a clear day?", "blue"), ("How many days are in a week?", "seven"),
          ("What is the opposite of hot?", "cold"), ("What is the capital of Japan?", "Tokyo"),
          ("What is the largest planet in the solar system?", "Jupiter"), ("What is 10 minus 3?", "7"),
          ("Which animal says moo?", "cow"), ("What is frozen water called?", "ice")]
    examples.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in qa))
    code, out = run(runner, "calibrate", "--config", str(cfg), "--examples", str(examples), "--max-tokens",
                    "12",
                    "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["probed_attempts"] == 40  # 10 examples x 2 local tiers x 2 scorers
    pairs = {(r["tier"], r["scorer"]) for r in report["fitted"] + report["skipped"]}
    assert pairs == {("system-1", "logprob"), ("system-1", "verify"), ("system-2", "logprob"),
                     ("system-2", "verify")}
    store = open_store(load_settings(LAB, cfg))
    probes = [a for a in store.attempts(limit=100) if a.decision == "probe"]
    assert len(probes) == 40 and all(a.label_source == "labelled:examples.jsonl" for a in probes)
    assert all(a.raw_score is not None and 0.0 <= a.raw_score <= 1.0 for a in probes)
    store.close()


def test_serve_runs_the_service(tmp_path: Path) -> None:
    """The real entry point: `python -m sovereign router serve` in its own process."""
    import os
    import subprocess
    import sys

    import httpx
    from testbed import free_port

    port = free_port()
    cfg = tmp_path / "r.yml"
    closed = free_port()  # nothing listens there: both local tiers are down
    cfg.write_text(yaml.safe_dump({"auth": {"mode": "none"}, "embedding": {"backend": "hashed"}, "tiers": [
        {"name": "system-1", "endpoint": f"http://127.0.0.1:{closed}"},
        {"name": "system-2", "endpoint": f"http://127.0.0.1:{closed}"}]}))
    proc = subprocess.Popen([sys.executable, "-m", "sovereign", "router", "serve", "-i", str(LAB), "--config",
                             str(cfg), "--port", str(port)], env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = None
        for _ in range(100):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health is not None, "the router did not come up"
        # No local tier answers, so the router is degraded and says which tier is down.
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert health.json()["tiers"]["system-1"]["ok"] is False, health.json()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                       json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
        # Local tiers down, the stand-in not running: 503 naming every tier's failure.
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_tier_available"
        assert [s["tier"] for s in r.json()["sovereign"]["path"]] == ["system-1", "system-2", "cloud"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0].decode()
    assert f"router on http://127.0.0.1:{port}" in out


def test_config_from_the_file_alone(runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "router.yml"
    f.write_text(yaml.safe_dump({"tiers": [{"name": "only", "kind": "local", "endpoint": "http://127.0.0.1:1"}],
                                 "listen": {"port": 9002}}))
    code, out = run(runner, "config", "-i", "none", "--config", str(f), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert [t["name"] for t in data["tiers"]] == ["only"] and data["listen"]["port"] == 9002
    assert data["source"] == [f"file {f}"]


def test_path_line_says_how_each_answer_came() -> None:
    from sovereign.cli.router import path_line

    def step(tier: str, decision: str, score: float | None = None) -> dict:
        return {"tier": tier, "decision": decision, "score": score}

    climbed = {"tier": "cloud", "simulated": True, "crystal_id": "c1", "domain": "general",
               "path": [step("system-1", "below-threshold", 0.261), step("system-2", "below-threshold", 0.39),
                        step("cloud", "accepted", 1.0)]}
    assert path_line(climbed) == ("system-1 below 0.26 → system-2 below 0.39 → cloud (simulated)"
                                  " → crystallized")
    hit = {"tier": "crystal", "crystallized": {"match": "exact"},
           "path": [step("crystals", "crystallized", 1)]}
    assert path_line(hit) == "crystal exact"
    denied = {"tier": "system-2", "below_threshold": True, "domain": "financial",
              "path": [step("system-1", "below-threshold", 0.2), step("system-2", "below-threshold", 0.3),
                       step("cloud", "egress-denied")]}
    assert path_line(denied) == ("system-1 below 0.20 → system-2 below 0.30 → cloud egress denied (financial)"
                                 " → best local answer, below threshold")
    local = {"tier": "system-1", "path": [step("system-1", "accepted", 0.9)]}
    assert path_line(local) == "system-1 accepted 0.90"
