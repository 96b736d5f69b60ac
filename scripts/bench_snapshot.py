#!/usr/bin/env python3
"""A snapshot of a loaded server, and what it costs the writes running beside it
(standard library).

Starts the binary on a temporary data directory (embedded stores), preloads --points
random 384-dim points into one collection and 3,000 graph nodes, waits --settle seconds
(0 or 1: the snapshot then meets the HNSW build of the preload), then runs one
upsert client in a loop, takes a snapshot through POST /admin/snapshots, and prints the
snapshot's time and size and the client's latencies before and during it; last, the
time `ragbrain snapshot restore` takes.

    scripts/bench_snapshot.py --binary target/release/ragbrain --points 50000 --settle 30
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

PORT = 18190


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--points", type=int, default=50000)
    ap.add_argument("--settle", type=float, default=30)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ragbrain-snapshot-")
    data = os.path.join(work, "data")
    env = dict(os.environ, RAGBRAIN__LOG__LEVEL="warn", RAGBRAIN__RATE_LIMIT__ENABLED="false")
    server = subprocess.Popen([args.binary, "--port", str(PORT), "--data-dir", data], env=env)
    try:
        run(args, work, data)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


def run(args, work, data):
    base = f"http://127.0.0.1:{PORT}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/health/live")
            break
        except OSError:
            time.sleep(0.1)
    key = open(os.path.join(data, "bootstrap-admin.key")).read().strip()

    def call(method, path, body=None):
        req = urllib.request.Request(
            base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"X-API-Key": key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read() or b"null")

    rnd = random.Random(1)
    call("PUT", "/vectors/collections/big", {"dim": 384})
    started = time.time()
    for first in range(0, args.points, 500):
        ids = range(first, min(args.points, first + 500))
        points = [{"id": i, "vector": [rnd.random() for _ in range(384)], "payload": {"n": i}} for i in ids]
        call("POST", "/vectors/upsert", {"collection": "big", "points": points})
    for i in range(3000):
        call("POST", "/graphs/node", {"id": f"n{i}", "labels": ["P"], "properties": {"name": f"node {i}"}})
    print(f"preloaded {args.points} points and 3000 nodes in {time.time() - started:.1f} s", flush=True)
    time.sleep(args.settle)

    latencies, stop = [], threading.Event()

    def writer():
        i = args.points
        while not stop.is_set():
            point = {"id": i, "vector": [rnd.random() for _ in range(384)]}
            t = time.time()
            call("POST", "/vectors/upsert", {"collection": "big", "points": [point]})
            latencies.append((t, time.time() - t))
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(3)
    began = time.time()
    status, snapshot = call("POST", "/admin/snapshots")
    ended = time.time()
    time.sleep(2)
    stop.set()
    thread.join()

    def size(root):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)

    mib = 2**20
    print(
        f"snapshot: {status} in {1000 * (ended - began):.0f} ms, file {snapshot['bytes'] / mib:.1f} MiB, "
        f"data directory {(size(data) - snapshot['bytes']) / mib:.1f} MiB"
    )
    for name, sample in [
        ("before", sorted(l for t, l in latencies if t < began)),
        ("during", sorted(l for t, l in latencies if began <= t < ended)),
    ]:
        q = lambda f: 1000 * sample[min(len(sample) - 1, int(len(sample) * f))] if sample else float("nan")  # noqa: E731
        print(f"one upsert client {name}: n={len(sample)} p50 {q(.5):.1f} p99 {q(.99):.1f} max {q(1):.1f} ms")
    file = os.path.join(data, "snapshots", snapshot["name"])
    started = time.time()
    restored = subprocess.run(
        [args.binary, "snapshot", "restore", file, "--data-dir", os.path.join(work, "restored")],
        capture_output=True,
        text=True,
    )
    print(f"restore: exit {restored.returncode} in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
