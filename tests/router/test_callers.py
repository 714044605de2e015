"""Callers: keys, the door (Host, Origin, scope) and each caller's policy, on a
real router over the real tiers and the stand-in cloud (simulated)."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import stat
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from router_helpers import LAB, router_of, standin_calls, tiers_config
from testbed import ThreadedServer

from sovereign.errors import SovereignError
from sovereign.router.callers import CallerError, Policy, Registry, managed_entries
from sovereign.router.config import load_settings
from sovereign.router.store import open_store

CLOUD_Q = "What is the capital of Italy?"  # the stand-in answers it; no local tier reaches threshold 1.0


def cfg_for(smol: Any, gemma: Any, standin: Any, **over: Any) -> dict[str, Any]:
    cfg = tiers_config(smol, gemma, standin.url, embedding={"backend": "hashed"},
                       egress={"allow_providers": ["cloud-standin"], "never_leave_domains": ["financial"],
                               "daily_budget": {"calls": 100, "tokens": 100000}}, **over)
    cfg["auth"] = {"mode": "keys"}
    for t in cfg["tiers"]:
        t.update(threshold=1.0, max_tokens=4)  # never accepted: every question climbs to the cloud
    cfg["tiers"].append({"name": "cloud", "threshold": 0.0})
    return cfg


def registry(settings: Any) -> Registry:
    return Registry(settings.keys_path(), settings.auth.managed_file)


def chat(srv: Any, key: str | None, text: str = CLOUD_Q, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    body = {"model": kw.pop("model", "auto"), "max_tokens": 4,
            "messages": [{"role": "user", "content": text}]}
    return httpx.post(srv.url + "/v1/chat/completions", json=body, headers=headers, timeout=120)


# --------------------------------------------------------------------------- keys


def test_a_key_is_shown_once_and_only_its_salted_hash_is_kept(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "callers.json")
    one, two = reg.add("owner", Policy(scope="admin")), reg.add("kairos", Policy(egress="deny"))
    text = (tmp_path / "callers.json").read_text()
    assert one not in text and two not in text
    entries = {e.name: e for e in reg.entries()}
    assert entries["owner"].salt != entries["kairos"].salt
    assert stat.S_IMODE((tmp_path / "callers.json").stat().st_mode) == 0o600
    assert reg.authenticate(one).name == "owner" and reg.authenticate(two).policy.egress == "deny"
    assert reg.authenticate(one + "x") is None
    with pytest.raises(CallerError, match="already has a live key"):
        reg.add("owner", Policy())
    new = reg.rotate("owner")
    assert reg.authenticate(one) is None and reg.authenticate(new).name == "owner"
    assert reg.authenticate(new).policy.scope == "admin"  # rotation keeps the policy
    reg.revoke("kairos")
    assert reg.authenticate(two) is None
    with pytest.raises(CallerError, match="no live key named 'nobody'"):
        reg.revoke("nobody")


def test_managed_keys_render_alike_twice_and_are_revoked_through_the_operators(tmp_path: Path) -> None:
    callers = {"owner": {"key": "lab-owner-key-not-secret-0123", "scope": "admin"},
               "kairos": {"key": "lab-kairos-key-not-secret-0123", "egress": "deny", "tiers": ["system-1"]}}
    first, again = managed_entries(callers, "mimical-1"), managed_entries(callers, "mimical-1")
    assert first == again and "lab-owner-key" not in json.dumps(first)
    managed = tmp_path / "managed.json"
    managed.write_text(json.dumps(first))
    reg = Registry(tmp_path / "callers.json", managed)
    assert reg.authenticate("lab-kairos-key-not-secret-0123").policy.tiers == ["system-1"]
    with pytest.raises(CallerError, match="managed by the inventory"):
        reg.rotate("owner")
    reg.revoke("owner")
    assert reg.authenticate("lab-owner-key-not-secret-0123") is None
    with pytest.raises(CallerError, match=r"router_callers\.bad\.egress"):
        managed_entries({"bad": {"key": "x" * 30, "egress": "sometimes"}}, "h")
    with pytest.raises(CallerError, match="at least 24"):
        managed_entries({"short": {"key": "short"}}, "h")


def test_without_keys_the_router_listens_on_loopback_only(tmp_path: Path) -> None:
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"auth": {"mode": "none"}, "listen": {"host": "192.0.2.2"}}))
    with pytest.raises(SovereignError) as exc:
        load_settings(LAB, f)
    assert "listens only on a loopback address" in " ".join(exc.value.details)


# --------------------------------------------------------------------------- the door


def test_no_key_or_a_wrong_one_gets_401_and_a_revoked_key_is_refused_at_once(
        smol_server, gemma_server, standin, serve_router) -> None:
    srv, settings = serve_router(cfg_for(smol_server, gemma_server, standin))
    missing = chat(srv, None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert "keys add" in missing.json()["error"]["message"]  # no key exists yet: says how to make one
    key = registry(settings).add("owner", Policy())
    wrong = chat(srv, key[:-2] + "zz")
    assert wrong.status_code == 401 and wrong.json()["error"] == {
        "message": "incorrect API key provided (unknown or revoked)", "type": "invalid_request_error",
        "param": None, "code": "invalid_api_key"}
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)
    answer = client.chat.completions.create(model="auto", max_tokens=4,
                                            messages=[{"role": "user", "content": CLOUD_Q}])
    assert answer.choices[0].message.content == "Rome."
    registry(settings).revoke("owner")  # another process's write: no restart
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="auto", max_tokens=4,
                                       messages=[{"role": "user", "content": CLOUD_Q}])


def test_host_and_origin_must_be_the_routers_own(smol_server, gemma_server, standin, serve_router) -> None:
    srv, settings = serve_router(cfg_for(smol_server, gemma_server, standin,
                                         listen={"cors_origins": ["http://chat.mimical.lan"]}))
    key = registry(settings).add("owner", Policy())
    rebound = chat(srv, key, headers={"Host": "attacker.example:8090"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "host_not_allowed"
    page = chat(srv, key, headers={"Origin": "http://attacker.example"})
    assert page.status_code == 403 and page.json()["error"]["code"] == "origin_not_allowed"
    assert httpx.get(srv.url + "/health", headers={"Host": "attacker.example"}).status_code == 403
    ok = chat(srv, key, headers={"Origin": "http://chat.mimical.lan"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://chat.mimical.lan"
    assert chat(srv, key, headers={"Host": "localhost"}).status_code == 200


def _outward_address() -> str:
    """This machine's address on its network (not loopback)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.123", 9))  # no packet is sent: it only picks the route
            return s.getsockname()[0]
    except OSError as exc:
        pytest.skip(f"no network address besides loopback: {exc}")


def test_detail_and_metrics_need_an_admin_key_off_loopback(smol_server, gemma_server, standin,
                                                           tmp_path: Path) -> None:
    address = _outward_address()
    cfg = cfg_for(smol_server, gemma_server, standin, listen={"host": address})
    f = tmp_path / "outward.yml"
    f.write_text(yaml.safe_dump(cfg))
    settings = load_settings(LAB, f)
    from sovereign.router.app import create_app

    chat_key, admin_key = registry(settings).add("app", Policy()), registry(settings).add("ops",
                                                                                        Policy(scope="admin"))
    srv = ThreadedServer(create_app(settings), host=address).start()
    try:
        plain = httpx.get(srv.url + "/health", timeout=30).json()
        assert set(plain["tiers"]["system-1"]) == {"kind", "ok"} and "detail" not in plain["store"]
        assert smol_server.url.split("//")[1] not in json.dumps(plain)
        admin = httpx.get(srv.url + "/health", headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
        assert admin.json()["tiers"]["system-1"]["endpoint"] == smol_server.url
        for key in (None, chat_key):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            assert httpx.get(srv.url + "/metrics", headers=headers).status_code == 403
        admin_metrics = httpx.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {admin_key}"})
        assert admin_metrics.status_code == 200 and "sovereign_router" in admin_metrics.text
    finally:
        srv.stop()


def test_a_503_names_tiers_not_their_addresses(serve_router) -> None:
    cfg = tiers_config(None, None, None, embedding={"backend": "hashed"}, auth={"mode": "keys"})  # nowhere
    cfg["tiers"].append({"name": "cloud", "enabled": False})
    srv, settings = serve_router(cfg)
    down = chat(srv, registry(settings).add("app", Policy()), "Which river is the longest?")
    assert down.status_code == 503, down.text
    steps = down.json()["sovereign"]["path"]
    assert [s["tier"] for s in steps] == ["system-1", "system-2", "cloud"]
    assert "127.0.0.1" not in down.text and "<endpoint>" in steps[0]["reason"]
    stored = open_store(settings)
    try:
        srv.call(router_of(srv).drain())
        assert "127.0.0.1:9" in stored.attempts()[0].reason  # the operator's record keeps the address
    finally:
        stored.close()


# --------------------------------------------------------------------------- policy


def test_caller_policy_matrix(smol_server, gemma_server, standin, serve_router) -> None:
    """Each policy only narrows: tiers, egress, crystals; every row names its caller."""
    srv, settings = serve_router(cfg_for(smol_server, gemma_server, standin))
    reg = registry(settings)
    keys = {
        "owner": reg.add("owner", Policy(scope="admin")),
        "local-only": reg.add("local-only", Policy(tiers=["system-1", "system-2"])),
        "no-egress": reg.add("no-egress", Policy(egress="deny")),
        "own": reg.add("own", Policy(crystals="own")),
        "blind": reg.add("blind", Policy(crystals="none", egress="deny")),
    }
    calls = standin_calls(standin)

    # A tier outside its policy: named → 403; on the way up → skipped, and no cloud call.
    named = chat(srv, keys["local-only"], model="cloud")
    assert named.status_code == 403 and named.json()["error"]["param"] == "model"
    climbed = chat(srv, keys["local-only"]).json()["sovereign"]
    assert [s["decision"] for s in climbed["path"] if s["tier"] == "cloud"] == ["skipped"]
    # Egress denied: never a cloud call, whatever the question.
    denied = chat(srv, keys["no-egress"]).json()["sovereign"]
    assert denied["egress"]["decision"] == "deny" and "no-egress" in denied["egress"]["reason"]
    assert standin_calls(standin) == calls

    # The owner's cloud answer is crystallized; shared callers are served it, `own` and `none` are not.
    first = chat(srv, keys["owner"]).json()["sovereign"]
    assert first["tier"] == "cloud" and standin_calls(standin) == calls + 1
    assert chat(srv, keys["no-egress"]).json()["sovereign"]["crystallized"]["match"] == "exact"
    assert chat(srv, keys["blind"]).json()["sovereign"]["crystallized"] is None
    mine = chat(srv, keys["own"]).json()["sovereign"]
    assert mine["crystallized"] is None and mine["tier"] == "cloud"  # its own question goes out once...
    again = chat(srv, keys["own"]).json()["sovereign"]
    assert again["crystallized"]["match"] == "exact"  # ...then it is its own
    assert standin_calls(standin) == calls + 2

    router = router_of(srv)
    srv.call(router.drain())
    store = open_store(settings)
    try:
        attempts = store.attempts(limit=500)
        assert {a.caller for a in attempts} == set(keys)
        audit = store.audit()
        assert {(e.caller, e.decision) for e in audit} == {("owner", "allow"), ("own", "allow"),
                                                         ("no-egress", "deny"), ("blind", "deny")}
        assert sorted(store.get_crystal(c.id).caller for c in store.list_crystals()) == ["own", "owner"]
    finally:
        store.close()


def test_a_callers_budget_is_reserved_atomically(smol_server, gemma_server, standin, serve_router) -> None:
    srv, settings = serve_router(cfg_for(smol_server, gemma_server, standin))
    reg = registry(settings)
    capped, other = reg.add("capped", Policy(daily_calls=3, crystals="none")), reg.add("other", Policy())
    calls = standin_calls(standin)
    questions = [f"What is the capital of Italy? ({i})" for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda q: chat(srv, capped, q).json()["sovereign"], questions))
    allowed = [a for a in answers if a["egress"]["decision"] == "allow"]
    assert len(allowed) == 3 and standin_calls(standin) == calls + 3
    spent = [a for a in answers if a["egress"]["decision"] == "deny"]
    assert all("caller 'capped': its daily call budget is spent (3/3" in a["egress"]["reason"] for a in spent)
    # The global budget is not spent: another caller still reaches the cloud.
    assert chat(srv, other, "What is the capital of Italy? (other)").json()["sovereign"]["tier"] == "cloud"


def test_the_keys_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sovereign.cli.main import app

    runner = CliRunner()
    cfg = tmp_path / "r.yml"
    cfg.write_text(yaml.safe_dump({"auth": {"keys_file": str(tmp_path / "callers.json")}}))
    base = ["router", "keys"]
    made = runner.invoke(app, [*base, "add", "kairos", "--egress", "deny", "--tiers", "system-1", "--json",
                               "-c", str(cfg)])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)["key"]
    assert key.startswith("sk-sov-") and key not in (tmp_path / "callers.json").read_text()
    bad = runner.invoke(app, [*base, "add", "x", "--tiers", "system-9", "-c", str(cfg)])
    assert bad.exit_code == 2 and "system-9 is not a tier" in bad.output
    listed = json.loads(runner.invoke(app, [*base, "list", "--json", "-c", str(cfg)]).output)
    assert listed[0]["policy"]["egress"] == "deny" and "hash" not in listed[0]
    assert key not in json.dumps(listed)
    rotated = runner.invoke(app, [*base, "rotate", "kairos", "--json", "-c", str(cfg)])
    new = json.loads(rotated.output)["key"]
    reg = Registry(tmp_path / "callers.json")
    assert reg.authenticate(key) is None and reg.authenticate(new).policy.tiers == ["system-1"]
    assert runner.invoke(app, [*base, "revoke", "kairos", "-c", str(cfg)]).exit_code == 0
    assert reg.authenticate(new) is None
    again = runner.invoke(app, [*base, "revoke", "kairos", "-c", str(cfg)])
    assert again.exit_code == 2 and "no live key named 'kairos'" in again.output


def test_a_restarted_router_counts_todays_calls_by_caller_the_outbox_too(tmp_path: Path) -> None:
    """Today's usage comes back at start: the store's rows, and the allowed calls
    a router that stopped with the store away left in the outbox."""
    import asyncio
    import time
    import uuid

    from sovereign.router.service import Router
    from sovereign.router.store import AUDIT, KINDS, AuditEntry
    from sovereign.service.outbox import Outbox

    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"auth": {"mode": "none"}, "embedding": {"backend": "none"}}))
    settings = load_settings(LAB, f)

    def allowed(tokens: int) -> AuditEntry:
        return AuditEntry(uid=uuid.uuid4().hex, at=time.time(), request_id="r", provider="cloud-standin",
                          domain="general", decision="allow", reason="allowed", tokens=tokens,
                          caller="kairos")

    store = open_store(settings)
    store.put_audit([allowed(5)])
    store.close()
    Outbox(settings.spool_dir(), KINDS).append(AUDIT, [allowed(10)])

    async def go() -> tuple[int, tuple[int, int, float]]:
        router = Router(settings)
        await router.start()
        try:
            return router.gate.budget().calls, router.gate.caller_usage("kairos")
        finally:
            await router.close()

    assert asyncio.run(go()) == (2, (2, 15, 0.0))
