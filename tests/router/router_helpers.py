"""Helpers shared by the router's tests (a module name of its own: tests/unit has a conftest too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from testbed import LlamaServer, ThreadedServer

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventory" / "lab"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The lab inventory's vault_llama_api_key: the test tiers require it, as the
# deployed llama-servers do, and the router takes it from the inventory.
LLAMA_KEY = "lab-llama-key-not-secret"
STANDIN_KEY = "sk-standin-" + "7f3a9c1e5b2d4068a1c3e5f7"
STANDIN_ANSWERS = {
    "What is the capital of France?": "Paris.",
    "What is the capital of Italy?": "Rome.",
    "How many legs does a spider have?": "Eight.",
    "What is 12 + 30?": "42.",
}



def standin_calls(srv: ThreadedServer) -> int:
    return int(httpx.get(srv.url + "/stats").json()["calls"])


def tiers_config(smol: LlamaServer | None, gemma: LlamaServer | None, standin_url: str | None,
                 **overrides: Any) -> dict[str, Any]:
    """Router settings for the lab inventory's tiers, pointed at the test servers."""
    tiers = [
        {"name": "system-1", "endpoint": smol.url if smol else "http://127.0.0.1:9", "timeout_s": 20},
        {"name": "system-2", "endpoint": gemma.url if gemma else "http://127.0.0.1:9", "api": "completion",
         "timeout_s": 20},
    ]
    cfg: dict[str, Any] = {
        # A loopback router without caller keys (test_callers.py turns them on).
        "auth": {"mode": "none"},
        "tiers": tiers,
        "providers": {"cloud-standin": {
            "name": "cloud-standin", "base_url": (standin_url or "http://127.0.0.1:9") + "/v1",
            "model": "cloud-standin", "api_key_env": "SOVEREIGN_CLOUD_STANDIN_KEY", "simulated": True}},
        "down_retry_s": 30,
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def router_of(srv: ThreadedServer) -> Any:
    """The Router object behind a served app (to drain its background writes)."""
    return srv.server.config.app.state.routers["router"]
