"""Performance of the llama.cpp RPC layer split: what splitting a model costs.

Gemma 3 270M (Q4_K_M, CPU) served three ways by this machine's llama.cpp
build (`make llama`), the same requests to each, interleaved round by round
so that all three see the same machine state:

- `local`: one llama-server holding every layer (the baseline);
- `split`: llama-server with --rpc over two rpc-servers on the loopback and
  --tensor-split 0.50,0.50, as the lab's head runs it (its own share on a
  loopback rpc-server, the worker's on another);
- `split+1ms`: the same with 1 ms added to each way of the RPC traffic
  (tc netem on the loopback is not available here, so the two rpc-servers
  are reached through a relay that delays each forwarded chunk), the order
  of a switched Ethernet hop under load; RoCE's is ~10 µs.

Printed: generation tokens/s (llama-server's own `predicted_per_second`,
n_predict 64, temperature 0) and prompt tokens/s, median of the rounds, as a
ratio to `local`. A layer split is sequential: each token crosses every
boundary, so the ratio measures what the split and the link cost, never a
speed-up.

Usage: SOVEREIGN_LLAMA_SERVER=/path/to/llama-server python perf/split.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from testbed import LlamaServer, find_llama_server, free_port  # noqa: E402

from sovereign import downloads  # noqa: E402

PROMPT = "The three most important inventions of the twentieth century were"


def rpc_server(binary: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            # The probe held rpc-server's one client slot for an instant; no client waits yet.
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"rpc-server on {port} did not start (log: {log})")


def delaying_relay(target: int, delay_s: float) -> int:
    """A TCP relay on a free port to 127.0.0.1:target that delays every chunk."""
    port = free_port()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(1 << 16):
                await asyncio.sleep(delay_s)
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    time.sleep(0.3)
    return port


def measure(url: str) -> tuple[float, float]:
    r = httpx.post(url + "/completion", timeout=300, json={
        "prompt": PROMPT, "n_predict": 64, "temperature": 0, "cache_prompt": False})
    r.raise_for_status()
    t = r.json()["timings"]
    return t["predicted_per_second"], t["prompt_per_second"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = find_llama_server()
    if server is None:
        raise SystemExit("set SOVEREIGN_LLAMA_SERVER to a llama-server binary (make llama)")
    rpc_bin = server.parent / "ggml-rpc-server"
    model = downloads.fetch(downloads.GEMMA3_270M)
    work = Path(tempfile.mkdtemp(prefix="sovereign-perf-split-"))
    procs: list[subprocess.Popen] = []
    servers: dict[str, LlamaServer] = {}
    try:
        servers["local"] = LlamaServer(server, model, threads=1, log_file=work / "local.log").start(120)
        for name, delay in (("split", 0.0), ("split+1ms", 0.001)):
            ports = [free_port(), free_port()]
            procs += [rpc_server(rpc_bin, p, work / f"{name}-rpc-{p}.log") for p in ports]
            reach = ports if not delay else [delaying_relay(p, delay) for p in ports]
            servers[name] = LlamaServer(server, model, threads=1, log_file=work / f"{name}.log", extra=[
                "-ngl", "999", "--rpc", ",".join(f"127.0.0.1:{p}" for p in reach),
                "--tensor-split", "0.50,0.50"]).start(300)
        tg: dict[str, list[float]] = {n: [] for n in servers}
        pp: dict[str, list[float]] = {n: [] for n in servers}
        for srv in servers.values():
            measure(srv.url)  # warm-up
        for _ in range(args.rounds):
            for name, srv in servers.items():
                g, p = measure(srv.url)
                tg[name].append(g)
                pp[name].append(p)
        base_tg, base_pp = statistics.median(tg["local"]), statistics.median(pp["local"])
        print(f"Gemma 3 270M Q4_K_M, CPU, 1 thread per process, {args.rounds} rounds (median); "
              "ratio = variant / local, same run")
        print(f"{'variant':<11} {'tg t/s':>8} {'ratio':>7} {'pp t/s':>8} {'ratio':>7}")
        for name in servers:
            g, p = statistics.median(tg[name]), statistics.median(pp[name])
            print(f"{name:<11} {g:8.1f} {g / base_tg:6.2f}× {p:8.1f} {p / base_pp:6.2f}×")
    finally:
        for srv in servers.values():
            srv.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
