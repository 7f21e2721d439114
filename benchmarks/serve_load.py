"""Load test of `pairgan serve`: a real uvicorn on 127.0.0.1, N requests at concurrency C.

    python benchmarks/serve_load.py RUN_OR_ONNX [MORE ...] [--requests 200] [--concurrency 8]
        [--size 128] [--md benchmarks/serve_load.md] [--json out.json]

Starts `python -m pairgan serve MODELS --port P` in a subprocess, waits for /healthz, sends a few
warm-up requests, then `--requests` POST /v1/translate requests from `--concurrency` threads (each
with its own keep-alive connection; models are used in turn). Reports errors (any status other
than 200, or a reply that is not a PNG of the input's size), latency percentiles, throughput and the
server's resident memory (sampled every 50 ms from /proc: after warm-up, peak, at the end).
Without MODELS it trains a tiny pix2pix for one step (a smoke test, not a benchmark).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(models: list[str], port: int, extra: list[str] | None = None, timeout: float = 180.0,
                 log: Any = None, threads: int | None = None) -> subprocess.Popen:
    """`python -m pairgan serve MODELS --port PORT` on 127.0.0.1; returns once /healthz answers."""
    import httpx

    cmd = [sys.executable, "-m", "pairgan", "serve", *models, "--host", "127.0.0.1", "--port", str(port),
           "--device", "cpu", *(extra or [])]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads, and onnxruntime's (pairgan follows torch)
    proc = subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL, stderr=log or subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def payload(model: dict[str, Any], size: int, seed: int) -> bytes:
    """A PNG input for ``model``: blocks of its palette colours (label-like models) or noise blocks."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pal = model.get("palette")
    colours = np.asarray(pal, np.uint8) if pal else rng.integers(0, 256, (8, 3), dtype=np.uint8)
    arr = np.empty((size, size, 3), np.uint8)
    arr[:] = colours[0]
    for _ in range(12):
        y, x = rng.integers(0, size, 2)
        h, w = rng.integers(size // 8, size // 2, 2)
        arr[y:y + h, x:x + w] = colours[rng.integers(0, len(colours))]
    if model["input"]["kind"] == "label" and not pal:
        arr = arr[:, :, :1] % max(1, model["input"]["label_nc"])
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def run_load(models: list[str], *, requests: int = 200, concurrency: int = 8, size: int = 128,
             warmup: int = 4, extra: list[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Start a server for ``models`` and load it; returns the figures."""
    import httpx
    from PIL import Image

    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start_server(models, port, ["--queue", str(max(16, 2 * concurrency))] + (extra or []), log=log,
                            threads=threads)
        base = f"http://127.0.0.1:{port}"
        try:
            info = httpx.get(f"{base}/v1/models", timeout=10).json()["models"]
            bodies = [payload(m, size, i) for i, m in enumerate(info)]

            def one(client: httpx.Client, i: int) -> tuple[float, str | None]:
                k = i % len(info)
                t0 = time.perf_counter()
                try:
                    r = client.post(f"{base}/v1/translate", data={"model": info[k]["name"], "seed": str(i)},
                                    files={"image": ("in.png", bodies[k], "image/png")}, timeout=120)
                    dt = time.perf_counter() - t0
                    if r.status_code != 200:
                        return dt, f"{r.status_code}: {r.text[:200]}"
                    if Image.open(io.BytesIO(r.content)).size != (size, size):
                        return dt, "wrong output size"
                    return dt, None
                except Exception as exc:  # connection errors count as errors
                    return time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"

            with httpx.Client() as c:
                for i in range(warmup):
                    _, err = one(c, i)
                    if err:
                        raise RuntimeError(f"warm-up request failed: {err}")
            rss_warm = rss_mib(proc.pid)
            samples: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    v = rss_mib(proc.pid)
                    if v is not None:
                        samples.append(v)
                    time.sleep(0.05)

            counter = iter(range(requests))
            lock = threading.Lock()
            latencies: list[float] = []
            errors: list[str] = []

            def worker() -> None:
                with httpx.Client() as client:
                    while True:
                        with lock:
                            i = next(counter, None)
                        if i is None:
                            return
                        dt, err = one(client, i)
                        with lock:
                            latencies.append(dt)
                            if err:
                                errors.append(err)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            pool = [threading.Thread(target=worker) for _ in range(concurrency)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            wall = time.perf_counter() - t0
            stop.set()
            sampler.join()
            health = httpx.get(f"{base}/healthz", timeout=10).json()
            rss_end = rss_mib(proc.pid)
        finally:
            stop_server(proc)
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, max(0, int(round(p / 100 * len(lat) + 0.5)) - 1))] * 1000

    return {
        "models": [{"name": m["name"], "method": m["method"], "backend": m["backend"]} for m in info],
        "requests": requests, "concurrency": concurrency, "size": size, "errors": len(errors),
        "error_samples": errors[:5], "seconds": wall, "throughput_rps": requests / wall,
        "latency_ms": {"mean": statistics.fmean(lat) * 1000, "p50": pct(50), "p90": pct(90), "p95": pct(95),
                       "p99": pct(99), "max": lat[-1] * 1000, "min": lat[0] * 1000},
        "rss_mib": {"after_warmup": rss_warm, "peak": max(samples) if samples else None, "end": rss_end},
        "queue": health["queue"],
        "threads": threads or "default",
        "cpu": f"{os.cpu_count()} logical CPUs, {platform.processor() or platform.machine()}",
        "python": platform.python_version(),
    }


def to_markdown(results: list[dict[str, Any]], note: str = "") -> str:
    lines = ["# `pairgan serve` load test", "",
             "`python benchmarks/serve_load.py MODELS --requests 200 --concurrency 8` against a real uvicorn on "
             "127.0.0.1 (one worker thread, queue 16). Latency = client-side, request sent to PNG received.", ""]
    if note:
        lines += [note, ""]
    lines += ["| model (backend) | threads | input | requests | concurrency | errors | throughput | p50 | p90 | p95 | p99 "
              "| max | server RSS after warm-up / peak / end |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        names = ", ".join(f"{m['name']} ({m['method']}, {m['backend']})" for m in r["models"])
        L, M = r["latency_ms"], r["rss_mib"]
        lines.append(f"| {names} | {r['threads']} | {r['size']}x{r['size']} PNG | {r['requests']} | {r['concurrency']} | {r['errors']} | "
                     f"{r['throughput_rps']:.1f} req/s | {L['p50']:.0f} ms | {L['p90']:.0f} ms | {L['p95']:.0f} ms | "
                     f"{L['p99']:.0f} ms | {L['max']:.0f} ms | {M['after_warmup']:.0f} / {M['peak']:.0f} / "
                     f"{M['end']:.0f} MiB |")
    lines += ["", f"Machine: {results[0]['cpu']}, Python {results[0]['python']}.", ""]
    return "\n".join(lines)


def train_demo_model(root: Path) -> Path:
    """One step of a tiny pix2pix on 10 synthetic scenes' colour-coded label images (so it serves
    with their palette): a model to load-test the server with when none is given."""
    from pairgan.config import build_config
    from pairgan.synth.scenes import synth_scenes
    from pairgan.train.trainer import Trainer

    synth_scenes(root / "scenes", n=10, size=48, seed=0)
    tiny = ["model.num_downs=5", "model.ngf=8", "model.ndf=8", "model.n_layers_D=2", "data.load_size=36",
            "data.crop_size=32", "train.batch_size=2", "train.num_workers=0", "train.sample_every=0",
            "train.save_epoch_every=0", "train.max_steps=1", "data.input_kind=label"]
    cfg = build_config("pix2pix", tiny, data_path=str(root / "scenes" / "aligned"))
    Trainer(cfg, root / "demo", progress=False).fit()
    return root / "demo"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="run/checkpoint folders or exported files (NAME=PATH allowed)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--separate", action="store_true", help="one server and one table row per model")
    ap.add_argument("--threads", type=int, nargs="*", default=[0],
                    help="server inference threads (OMP_NUM_THREADS; 0 = default); several = one run each")
    ap.add_argument("--md", type=Path, help="write the figures as Markdown here")
    ap.add_argument("--note", default="", help="a line for the Markdown (e.g. what else used the CPU)")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()
    models = list(args.models)
    tmp = None
    if not models:
        tmp = tempfile.TemporaryDirectory()
        models = [str(train_demo_model(Path(tmp.name)))]
    groups = [[m] for m in models] if args.separate else [models]
    results = []
    for threads in args.threads:
        for g in groups:
            r = run_load(g, requests=args.requests, concurrency=args.concurrency, size=args.size, threads=threads or None)
            results.append(r)
            print(json.dumps(r, indent=2))
    if args.md:
        args.md.write_text(to_markdown(results, args.note))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    if any(r["errors"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
