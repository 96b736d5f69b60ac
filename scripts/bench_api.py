#!/usr/bin/env python3
"""Latency of the main API operations through HTTP, one client, keep-alive.

Starts the given ragbrain binary on a free loopback port over a fresh data directory,
loads a collection and a graph, then times each operation and prints p50/p99 in ms.
Standard library only. Example:

    cargo build --release && scripts/bench_api.py target/release/ragbrain --points 20000 --docs 2000
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port, key=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.key = key

    def call(self, method, path, body=None, expect=(200, 201)):
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["X-API-Key"] = self.key
        payload = json.dumps(body) if body is not None else None
        try:
            self.conn.request(method, path, body=payload, headers=headers)
            resp = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the keep-alive connection after server.idle_timeout_ms
            # (the connection sat idle while other clients ran): reconnect once.
            self.conn.close()
            self.conn.request(method, path, body=payload, headers=headers)
            resp = self.conn.getresponse()
        data = resp.read()
        if resp.status not in expect:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return json.loads(data) if data else None


def timed(fn, n):
    samples = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def vec(rng, dim):
    return [rng.uniform(-1, 1) for _ in range(dim)]


def concurrent(port, key, label, path, bodies, expect):
    """One keep-alive client per list in `bodies`, all at once; requests/s overall and
    the p50/p99 latency of single requests. Bodies are encoded before the clock starts
    so the client's own work does not dominate."""
    latencies = []

    def work(mine):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "X-API-Key": key}
        for body in mine:
            t = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            latencies.append((time.perf_counter() - t) * 1000)
            if resp.status != expect:
                raise RuntimeError(f"{path}: {resp.status}")

    threads = [threading.Thread(target=work, args=(mine,)) for mine in bodies]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    latencies.sort()
    n = len(latencies)
    return (f"{label} x{len(bodies)} clients", f"{n / elapsed:,.0f} requests/s",
            f"p50 {latencies[n // 2]:.2f} ms, p99 {latencies[int(n * 0.99) - 1]:.2f} ms")


def concurrent_writes(port, key, dim, first_id, clients=16, rounds=40):
    """Durable 10-point upserts, then durable node creates, from `clients` at once."""
    rng = random.Random(11)
    upserts = [[json.dumps({"collection": "bench", "points": [
        {"id": first_id + (n * rounds + r) * 10 + j, "vector": vec(rng, dim)} for j in range(10)]})
        for r in range(rounds)] for n in range(clients)]
    nodes = [[json.dumps({"id": f"c{n}-{r}", "labels": ["Concurrent"]}) for r in range(rounds * 5)]
             for n in range(clients)]
    return [concurrent(port, key, "upsert 10 points", "/vectors/upsert", upserts, 200),
            concurrent(port, key, "graph node create", "/graphs/node", nodes, 201)]


TOPICS = ["supply chain delays", "solar panel efficiency", "river flood defences", "vaccine trials",
          "railway timetables", "coffee harvests", "chip fabrication", "ocean shipping rates"]


def document(d, chunks=4):
    """About 800 characters per chunk, each naming two people and a place."""
    out = []
    for c in range(chunks):
        n = d * chunks + c
        a, b, place, topic = n % 2000, (n * 7 + 3) % 2000, (n * 13) % 300, TOPICS[n % len(TOPICS)]
        out.append(
            f"In report {n}, Analyst{a} Moreau met Engineer{b} Tanaka in City{place} to discuss {topic}. "
            f"They compared figures from the last three quarters and agreed that {topic} would need a new "
            f"plan before the winter. The minutes list every figure they reviewed, the open questions for "
            f"the next meeting, and the people who must approve the budget. Analyst{a} Moreau promised a "
            f"written summary within a week, while Engineer{b} Tanaka would visit City{place} again. ")
    return "".join(out)


def ingest_and_hybrid(c, docs, samples):
    """Ingest rate end to end (202 to processed), then text and hybrid search latency."""
    rows = []
    t = time.perf_counter()
    for start in range(0, docs, 100):
        events = [{"id": f"doc{d}", "text": document(d)} for d in range(start, min(start + 100, docs))]
        c.call("POST", "/ingest/batch", {"events": events}, expect=(202,))
    accepted_s = time.perf_counter() - t
    last = f"/ingest/doc{docs - 1}"
    while c.call("GET", last)["status"] == "pending":
        time.sleep(0.05)
    done_s = time.perf_counter() - t
    chunks = c.call("GET", "/vectors/collections/documents")["points_count"]
    rows.append(("ingest (batches of 100, to processed)",
                 f"{docs / done_s:,.0f} docs/s, {chunks / done_s:,.0f} chunks/s ({docs} docs, {chunks} chunks)",
                 f"accepted at {docs / accepted_s:,.0f} docs/s"))
    p50, p99 = timed(lambda i: c.call("POST", "/ingest", {"id": f"single{i}", "text": document(10_000 + i, 1)},
                                      expect=(202,)), samples)
    rows.append(("ingest one event (202, durable)", f"p50 {p50:.2f} ms", f"p99 {p99:.2f} ms"))
    while c.call("GET", f"/ingest/single{samples - 1}")["status"] == "pending":
        time.sleep(0.05)
    time.sleep(3)  # let the background HNSW build settle

    def question(i):
        return f"What did Analyst{(i * 37) % 2000} Moreau say about {TOPICS[i % len(TOPICS)]}?"
    ops = {
        "vector search by text k=10": lambda i: c.call("POST", "/vectors/search", {"text": question(i), "limit": 10}),
        "hybrid search k=10 hops=1": lambda i: c.call("POST", "/hybrid/search", {"query": question(i), "limit": 10, "hops": 1}),
        "hybrid search k=10 hops=2": lambda i: c.call("POST", "/hybrid/search", {"query": question(i), "limit": 10, "hops": 2}),
    }
    for name, fn in ops.items():
        p50, p99 = timed(fn, samples)
        rows.append((name, f"p50 {p50:.2f} ms", f"p99 {p99:.2f} ms"))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary")
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--docs", type=int, default=2000, help="documents to ingest (4 chunks each)")
    args = ap.parse_args()

    rng = random.Random(7)
    port = free_port()
    data = tempfile.mkdtemp(prefix="ragbrain-bench-")
    env = dict(os.environ, RAGBRAIN__LOG__LEVEL="warn",
               # The benchmark measures the server, not its quotas.
               RAGBRAIN__RATE_LIMIT__ENABLED="false")
    server = subprocess.Popen([args.binary, "--port", str(port), "--data-dir", data],
                              env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                Client(port).call("GET", "/health/live")
                break
            except OSError:
                time.sleep(0.05)
        with open(os.path.join(data, "bootstrap-admin.key")) as f:
            c = Client(port, f.read().strip())
        c.call("PUT", "/vectors/collections/bench", {"dim": args.dim})

        t = time.perf_counter()
        for start in range(0, args.points, 500):
            pts = [{"id": i, "vector": vec(rng, args.dim), "payload": {"group": i % 10}}
                   for i in range(start, min(start + 500, args.points))]
            c.call("POST", "/vectors/upsert", {"collection": "bench", "points": pts})
        load_s = time.perf_counter() - t
        # Let the background HNSW build run on the idle collection. Small collections stay
        # below the indexing threshold and are searched exactly, so the wait is capped.
        time.sleep(3)
        deadline = time.perf_counter() + 120
        while (c.call("GET", "/vectors/collections/bench")["indexed_vectors_count"] < args.points * 0.9
               and time.perf_counter() < deadline):
            time.sleep(1)
        index_wait_s = time.perf_counter() - t - load_s

        rows = [("bulk load", f"{args.points / load_s:,.0f} points/s ({args.points} x {args.dim}, batches of 500)", "")]
        nxt = [args.points]

        def upsert10(_):
            pts = [{"id": nxt[0] + j, "vector": vec(rng, args.dim)} for j in range(10)]
            nxt[0] += 10
            c.call("POST", "/vectors/upsert", {"collection": "bench", "points": pts})

        queries = [vec(rng, args.dim) for _ in range(args.samples)]
        ops = {
            "vector search k=10": lambda i: c.call("POST", "/vectors/search", {"collection": "bench", "vector": queries[i], "limit": 10}),
            "vector search k=10 + filter": lambda i: c.call("POST", "/vectors/search", {"collection": "bench", "vector": queries[i], "limit": 10, "filter": {"must": [{"key": "group", "match": {"value": 3}}]}}),
            "vector upsert 10 points (durable)": upsert10,
            "graph node create (durable)": lambda i: c.call("POST", "/graphs/node", {"id": f"n{i}", "labels": ["Bench"], "properties": {"i": i}}),
            "graph relationship create": lambda i: c.call("POST", "/graphs/relationship", {"from": f"n{i}", "to": f"n{(i * 7) % (i + 1)}", "type": "LINKS"}),
            "graph node find": lambda i: c.call("POST", "/graphs/node/find", {"label": "Bench", "properties": {"i": i}}),
            "graph neighbors 2 hops": lambda i: c.call("POST", "/graphs/neighbors", {"id": f"n{i}", "hops": 2}),
            "health/live": lambda i: c.call("GET", "/health/live"),
        }
        for name, fn in ops.items():
            p50, p99 = timed(fn, args.samples)
            rows.append((name, f"p50 {p50:.2f} ms", f"p99 {p99:.2f} ms"))
        # The same filter once the field has a payload index.
        c.call("PUT", "/vectors/collections/bench/index", {"field": "group", "type": "integer"})
        p50, p99 = timed(ops["vector search k=10 + filter"], args.samples)
        rows.append(("vector search k=10 + indexed filter", f"p50 {p50:.2f} ms", f"p99 {p99:.2f} ms"))
        rows.extend(concurrent_writes(port, c.key, args.dim, nxt[0]))
        rows.extend(ingest_and_hybrid(c, args.docs, args.samples))
        print(f"HNSW build after load: {index_wait_s:.1f} s")
        for r in rows:
            print(f"{r[0]:<36} {r[1]:<48} {r[2]}")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
