"""Performance of the router: added latency over llama-server, and crystal lookups at 100,000.

1. Added latency. One real llama-server (SmolLM2 135M Q4_1, CPU) and the
   router served by `sovereign router serve` in its own process, with one tier
   pointing at that server (threshold 0, so every request is answered by
   exactly one upstream call). The same requests (the body the router itself
   sends upstream: `logprobs: true, top_logprobs: 5`, `max_tokens` 8,
   temperature 0) go directly to llama-server and through the router,
   interleaved round by round so both see the same machine state; p50 and p99
   at concurrency 1 and 16, and their ratio, from the same run. The router is
   measured twice: with the crystal lookup on (each request is embedded by
   all-MiniLM-L6-v2 for the semantic lookup) and off. The same again streamed
   (`stream: true`): time to first byte (the status line and headers) and to
   first token (the first SSE chunk with content), router against direct in
   the same run. llama-server streams as it generates; the router streams an
   answer only once the gate has scored all of it, so its first token comes
   after the whole (8-token) answer.
2. Crystal lookup with 100,000 stored answers (SQLite; Postgres too with
   --postgres when the server binaries are installed): the indexed exact
   query in the store, the start-up load of the in-memory index, and the
   serving path (exact key + semantic search over 100,000 vectors of 384
   dimensions in one domain, the worst case). The stored vectors are random
   unit vectors (embedding 100,000 prompts would take ~5 minutes here); a
   search costs the same whatever the vectors hold.

Usage: SOVEREIGN_LLAMA_SERVER=/path/to/llama-server python perf/router.py \
       [--quick] [--postgres] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from testbed import (  # noqa: E402
    LlamaServer,
    PostgresCluster,
    find_llama_server,
    find_pg_bin,
    free_port,
)

from sovereign import downloads  # noqa: E402
from sovereign.router.constraints import signature  # noqa: E402
from sovereign.router.store import RouterStore  # noqa: E402


# Distinct prompts of equal length per target and round, so that llama-server's
# prompt cache favours no target (a repeated prompt is answered faster).
def prompt(n: int) -> str:
    return f"In one word, what is the colour of object number {100000 + n}?"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


async def _one(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> float:
    t = time.perf_counter()
    r = await client.post(url, json=body, timeout=120)
    r.raise_for_status()
    return time.perf_counter() - t


async def _round(client: httpx.AsyncClient, url: str, bodies: list[dict[str, Any]],
                 one: Any = _one) -> list[Any]:
    return list(await asyncio.gather(*(one(client, url, b) for b in bodies)))


def _body(i: int, model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt(i)}],
            "max_tokens": 8, "temperature": 0.0, "logprobs": True, "top_logprobs": 5, "stream": stream}


async def latency(targets: dict[str, str], concurrency: int, rounds: int,
                  one: Any = _one, stream: bool = False) -> dict[str, list[Any]]:
    """What `one` measures of each request (default: its latency), per target."""
    out: dict[str, list[Any]] = {k: [] for k in targets}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    names = list(targets)
    seq = 0
    async with httpx.AsyncClient(limits=limits) as client:
        for name in names:  # warm-up: connections, caches, the embedder's first call
            for _ in range(3):
                bodies = [_body(seq + i, "auto", stream) for i in range(concurrency)]
                seq += len(bodies)
                await _round(client, targets[name], bodies, one)
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
                bodies = [_body(seq + i, "auto", stream) for i in range(concurrency)]
                seq += concurrency
                out[name] += await _round(client, targets[name], bodies, one)
    return out


def start_router(tier_url: str, state: Path, semantic: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = {"tiers": [{"name": "system-1", "endpoint": tier_url, "threshold": 0.0, "max_tokens": 8},
                     {"name": "system-2", "enabled": False}, {"name": "cloud", "enabled": False}],
           "store": {"semantic": semantic, "exact": True}, "auth": {"mode": "none"}}  # loopback, no keys
    state.mkdir(parents=True, exist_ok=True)
    (state / "router.yml").write_text(yaml.safe_dump(cfg))
    if semantic:
        # A store with crystals in the requests' domain, so every request is embedded and searched
        # (with none, the router skips the embedding).

        store = RouterStore.sqlite(state / "router" / "router.sqlite3")
        store.migrate()
        _fill(store, 1000, 384, 1)
        store.close()
    env = {**os.environ, "SOVEREIGN_STATE_DIR": str(state)}
    proc = subprocess.Popen([sys.executable, "-m", "sovereign", "router", "serve", "-i",
                             str(ROOT / "inventory/lab"),
                             "--config", str(state / "router.yml"), "--port", str(port)],
                            env=env, stdout=(state / "router.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/health", timeout=1).status_code in (200, 503):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"router did not start; see {state / 'router.log'}")


def measure_latency(quick: bool, work: Path) -> dict[str, Any]:
    binary = find_llama_server()
    if binary is None:
        raise SystemExit("set SOVEREIGN_LLAMA_SERVER to a llama-server binary")
    model = downloads.fetch(downloads.SMOLLM2)
    llama = LlamaServer(binary, model, log_file=work / "llama.log").start()
    procs = []
    try:
        on, on_url = start_router(llama.url, work / "router-on", semantic=True)
        off, off_url = start_router(llama.url, work / "router-off", semantic=False)
        procs = [on, off]
        targets = {"direct": llama.url + "/v1/chat/completions",
                   "router (crystal lookup on)": on_url + "/v1/chat/completions",
                   "router (crystal lookup off)": off_url + "/v1/chat/completions"}
        results: dict[str, Any] = {}
        for conc, rounds in ((1, 20 if quick else 60), (16, 3 if quick else 10)):
            lat = asyncio.run(latency(targets, conc, rounds))
            d50, d99 = pct(lat["direct"], 50), pct(lat["direct"], 99)
            rows = {}
            for name, values in lat.items():
                p50, p99 = pct(values, 50), pct(values, 99)
                rows[name] = {"n": len(values), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                              "ratio_p50": round(p50 / d50, 3), "ratio_p99": round(p99 / d99, 3),
                              "added_p50_ms": round(p50 - d50, 1), "added_p99_ms": round(p99 - d99, 1)}
            results[f"concurrency_{conc}"] = rows
        return {"latency": results, "streaming": measure_streaming(targets, quick)}
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        llama.stop()


# --------------------------------------------------------------------------- streaming


async def _stream_one(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, float]:
    """(time to first byte, time to first token) of one streamed request: the
    response's status line and headers, then the first SSE chunk with content."""
    t = time.perf_counter()
    async with client.stream("POST", url, json=body, timeout=120) as r:
        r.raise_for_status()
        ttfb = time.perf_counter() - t
        ttft = None
        async for line in r.aiter_lines():
            if ttft is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    ttft = time.perf_counter() - t
    if ttft is None:
        raise SystemExit(f"{url}: a stream without content")
    return ttfb, ttft


def measure_streaming(targets: dict[str, str], quick: bool) -> dict[str, Any]:
    """TTFB and TTFT of streamed requests (`stream: true`), each target against
    the direct llama-server (the first target) in the same run, interleaved."""
    results: dict[str, Any] = {}
    for conc, rounds in ((1, 20 if quick else 60), (16, 3 if quick else 10)):
        got = asyncio.run(latency(targets, conc, rounds, one=_stream_one, stream=True))
        direct = got[next(iter(targets))]
        base = {what: (pct([x[i] for x in direct], 50), pct([x[i] for x in direct], 99))
                for i, what in enumerate(("ttfb", "ttft"))}
        rows: dict[str, Any] = {}
        for name, values in got.items():
            row: dict[str, Any] = {"n": len(values)}
            for i, what in enumerate(("ttfb", "ttft")):
                p50, p99 = pct([x[i] for x in values], 50), pct([x[i] for x in values], 99)
                row |= {f"{what}_p50_ms": round(p50, 1), f"{what}_p99_ms": round(p99, 1),
                        f"{what}_ratio_p50": round(p50 / base[what][0], 3),
                        f"{what}_ratio_p99": round(p99 / base[what][1], 3)}
            rows[name] = row
        results[f"concurrency_{conc}"] = rows
    return results


def print_streaming(streaming: dict[str, Any]) -> None:
    for conc, rows in streaming.items():
        print(f"\nstreamed (stream: true), {conc.replace('_', ' ')} (same run; ratio = target / direct)")
        print(f"  {'':30} {'n':>5} {'TTFB p50':>9} {'p99':>7} {'x p50':>6} {'x p99':>6} "
              f"{'TTFT p50':>9} {'p99':>7} {'x p50':>6} {'x p99':>6}   (ms)")
        for name, r in rows.items():
            print(f"  {name:30} {r['n']:>5} {r['ttfb_p50_ms']:>9} {r['ttfb_p99_ms']:>7} "
                  f"{r['ttfb_ratio_p50']:>6} {r['ttfb_ratio_p99']:>6} {r['ttft_p50_ms']:>9} "
                  f"{r['ttft_p99_ms']:>7} {r['ttft_ratio_p50']:>6} {r['ttft_ratio_p99']:>6}")


def _fill(store: Any, n: int, dim: int, domain_count: int) -> tuple[list[str], np.ndarray]:
    from sovereign.router.crystals import exact_key
    from sovereign.router.store import Crystal

    rng = np.random.default_rng(0)
    keys: list[str] = []
    batch: list[Crystal] = []
    now = time.time()
    for i in range(n):
        msgs = [{"role": "user", "content": f"Synthetic question {i}: what is item {i} made of?"}]
        key = exact_key(msgs)
        keys.append(key)
        vec = rng.standard_normal(dim).astype("<f4")
        vec /= np.linalg.norm(vec)
        batch.append(Crystal(id=uuid.uuid4().hex, created_at=now + i * 1e-3, exact_key=key,
                             domain="general" if domain_count == 1 else f"d{i % domain_count}",
                             single_turn=True,
                             system_key="", prompt=msgs[0]["content"], messages=msgs, answer=f"Material {i}.",
                             provider="cloud-standin", model="cloud-standin-simulated", prompt_tokens=12,
                             completion_tokens=3, raw_response={"id": f"r{i}", "choices": [{"message": {
                                 "content": f"Material {i}."}}]}, embedding=vec.tobytes(),
                             embedder="all-minilm-l6-v2"))
        if len(batch) == 5000:
            store.put_crystals(batch)
            batch = []
    if batch:
        store.put_crystals(batch)
    return keys, rng


def measure_crystals(n: int, work: Path, postgres: bool) -> dict[str, Any]:
    from pydantic import SecretStr

    from sovereign.router.config import StoreSettings
    from sovereign.router.crystals import Crystallizer
    from sovereign.service.embed import MiniLMEmbedder

    embedder = MiniLMEmbedder(downloads.fetch(downloads.MINILM).parent)
    stores: list[tuple[str, Any, Any]] = [("sqlite", RouterStore.sqlite(work / "crystals.sqlite3"), None)]
    if postgres and find_pg_bin() is not None:
        root = Path(tempfile.mkdtemp(prefix="sovereign-pg-perf-"))
        cluster = PostgresCluster(find_pg_bin(), root).start()  # type: ignore[arg-type]
        pg = RouterStore.postgres(SecretStr(cluster.create_db("perf")))
        stores.append(("postgres", pg, (cluster, root)))
    out: dict[str, Any] = {"n": n}
    try:
        for name, store, _ in stores:
            store.migrate()
            t = time.perf_counter()
            keys, rng = _fill(store, n, embedder.dim, 1)
            fill_s = time.perf_counter() - t
            sample = [keys[int(i)] for i in rng.integers(0, n, 1000)]
            lat = []
            for k in sample:
                t = time.perf_counter()
                assert store.find_exact(k) is not None
                lat.append(time.perf_counter() - t)
            crystallizer = Crystallizer(StoreSettings(), store, embedder)
            t = time.perf_counter()
            crystallizer.load_index()
            load_s = time.perf_counter() - t
            exact_hit, semantic_miss, embed_only = [], [], []
            for i in range(200):
                msgs = [{"role": "user",
                         "content": f"Synthetic question {int(rng.integers(0, n))}: what is item "
                         f"{int(rng.integers(0, n))} made of?"}]
                t = time.perf_counter()
                hit = asyncio.run(crystallizer.lookup(msgs, "general"))
                (exact_hit if hit is not None else semantic_miss).append(time.perf_counter() - t)
                t = time.perf_counter()
                embedder.embed([msgs[0]["content"] + f" variant {i}"])
                embed_only.append(time.perf_counter() - t)
            for k in sample[:200]:
                ident = crystallizer.index.find_exact(k)
                assert ident is not None
                t = time.perf_counter()
                msgs = [{"role": "user", "content": crystallizer.index.entries[ident].prompt}]
                assert asyncio.run(crystallizer.lookup(msgs, "general")) is not None
                exact_hit.append(time.perf_counter() - t)
            q = embedder.embed(["what is item 5 made of?"])[0]
            search = []
            for _ in range(200):
                t = time.perf_counter()
                crystallizer.index.search("general", "", q, 0.92, signature("what is item 5 made of?"))
                search.append(time.perf_counter() - t)
            out[name] = {
                "fill_s": round(fill_s, 1), "index_load_s": round(load_s, 2),
                "store_exact_query_p50_ms": round(pct(lat, 50),
                                                  3), "store_exact_query_p99_ms": round(pct(lat, 99), 3),
                "lookup_exact_hit_p50_ms": round(pct(exact_hit, 50), 2),
                "lookup_exact_hit_p99_ms": round(pct(exact_hit, 99), 2),
                "lookup_miss_with_semantic_p50_ms": round(pct(semantic_miss, 50),
                                                          2) if semantic_miss else None,
                "lookup_miss_with_semantic_p99_ms": round(pct(semantic_miss, 99),
                                                          2) if semantic_miss else None,
                "semantic_search_only_p50_ms": round(pct(search, 50), 2),
                "semantic_search_only_p99_ms": round(pct(search, 99), 2),
                "embed_query_p50_ms": round(pct(embed_only, 50), 2),
            }
    finally:
        for _, store, extra in stores:
            store.close()
            if extra:
                extra[0].stop("immediate")
                shutil.rmtree(extra[1], ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests, 10,000 crystals")
    ap.add_argument("--postgres", action="store_true", help="also the crystal lookup on Postgres")
    ap.add_argument("--crystals", type=int, default=None)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sovereign-perf-router-"))
    n = args.crystals or (10_000 if args.quick else 100_000)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results: dict[str, Any] = {"machine": machine}
    try:
        if not args.skip_latency:
            results |= measure_latency(args.quick, work)
        results["crystals"] = measure_crystals(n, work, args.postgres)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {results['machine']}")
    for conc, rows in results.get("latency", {}).items():
        print(f"\nadded latency, {conc.replace('_', ' ')} (same run; ratio = router / direct)")
        print(f"  {'':30} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'x p50':>7} {'x p99':>7} "
              f"{'+p50 ms':>8} {'+p99 ms':>8}")
        for name, r in rows.items():
            print(f"  {name:30} {r['n']:>5} {r['p50_ms']:>9} {r['p99_ms']:>9} {r['ratio_p50']:>7} "
                  f"{r['ratio_p99']:>7} "
                  f"{r['added_p50_ms']:>8} {r['added_p99_ms']:>8}")
    print_streaming(results.get("streaming", {}))
    c = results["crystals"]
    print(f"\ncrystal lookup with {c['n']:,} stored answers")
    for name in ("sqlite", "postgres"):
        if name in c:
            for k, v in c[name].items():
                print(f"  {name:9} {k:36} {v}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
