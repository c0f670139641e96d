"""32 concurrent chat requests (half streamed) against `tunesmith api`, served one at a time
(infer_max_batch 1) and batched (infer_max_batch 16): total seconds for the batch, p50 / p95 latency
per request, generated tokens per second. The model is a tiny random one tunesmith builds offline; every
request decodes greedily, up to a budget of tokens (the end of turn may come first: the usage counts what was
generated)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from statistics import median, quantiles

import httpx2 as httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(model: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "tunesmith.cli", "api", f"model_name_or_path={model}", "template=qwen",
           f"infer_max_batch={max_batch}", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start")


async def one(client: httpx.AsyncClient, url: str, i: int, tokens: int) -> tuple[float, int]:
    body = {"model": "tiny", "messages": [{"role": "user", "content": f"Question number {i}: tell me about {i * 7}."}],
            "temperature": 0, "max_tokens": tokens, "stream": i % 2 == 1}
    started = time.perf_counter()
    if not body["stream"]:
        response = await client.post(f"{url}/v1/chat/completions", json=body)
        response.raise_for_status()
        return time.perf_counter() - started, response.json()["usage"]["completion_tokens"]
    body["stream_options"] = {"include_usage": True}
    used = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                data = json.loads(line[6:])
                used = (data.get("usage") or {}).get("completion_tokens", used)
    return time.perf_counter() - started, used


async def burst(url: str, n: int, tokens: int) -> tuple[float, list[float], int]:
    async with httpx.AsyncClient(timeout=600) as client:
        await one(client, url, 0, 2)  # warm-up
        started = time.perf_counter()
        results = await asyncio.gather(*(one(client, url, i, tokens) for i in range(n)))
        return time.perf_counter() - started, [r[0] for r in results], sum(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    model = ROOT / "bench" / "work" / "serve" / f"tiny-h{args.hidden_size}-l{args.layers}"
    if not (model / "config.json").exists():
        subprocess.run([sys.executable, "-m", "tunesmith.cli", "tiny-model", str(model), "--hidden-size",
                        str(args.hidden_size), "--num-layers", str(args.layers), "--intermediate-size",
                        str(args.hidden_size * 3)], check=True)
    rows = []
    for max_batch in (1, 16):
        proc, url = start(model, max_batch)
        try:
            total, latencies, tokens = asyncio.run(burst(url, args.requests, args.tokens))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        p95 = quantiles(latencies, n=20)[-1]
        rows.append((max_batch, total, median(latencies), p95, tokens / total))
        print(f"infer_max_batch {max_batch:>2}: {total:6.1f} s for {args.requests} requests, p50 "
              f"{median(latencies):5.1f} s, p95 {p95:5.1f} s, {tokens / total:6.1f} generated tokens/s", flush=True)
    base = rows[0]
    table = ["| infer_max_batch | total s | p50 s | p95 s | tokens/s |", "|---|---|---|---|---|"]
    table += [f"| {b} | {t:.1f} | {p50:.1f} | {p95:.1f} | {tps:.0f} |" for b, t, p50, p95, tps in rows]
    table.append(f"\n{args.requests} concurrent requests (half streamed), {args.tokens} tokens each, greedy; tiny model "
                 f"hidden {args.hidden_size}, {args.layers} layers; batched is {base[1] / rows[1][1]:.1f}x faster "
                 "for the whole burst.")
    print("\n".join(table))


if __name__ == "__main__":
    main()
