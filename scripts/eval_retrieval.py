#!/usr/bin/env python3
"""Retrieval quality of a ragbrain server on a multi-hop QA set (standard library only).

Starts the server on a temporary data directory (embedded stores, rate limits and the
search-result cache off),
ingests every paragraph of DATASET through POST /ingest/batch (text "title\\ntext",
metadata.title = the title, document id = the paragraph id), waits until the worker has
processed them, then asks every question through /vectors/search and /hybrid/search in
each mode and prints recall of the gold paragraphs at 2, 5 and 10 (a hit counts once
per paragraph, in rank order, as in the HippoRAG retrieval tables) and the latency of
the search calls.

DATASET: {"name", "questions": [{"id", "question", "gold": [paragraph ids]}],
          "corpus": [{"id", "title", "text"}]}, as in ../shared/eval-dev/.

    scripts/eval_retrieval.py ../shared/eval-dev/musique_dev100.json
    scripts/eval_retrieval.py --binary target/debug/ragbrain --modes vector,hybrid1 FILE...

Without --binary it builds and uses the release binary (cargo build --release).
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# mode name → (path, extra request fields)
MODES = {
    "vector": ("/vectors/search", {}),
    "lexical": ("/vectors/search", {"mode": "lexical"}),
    "both": ("/vectors/search", {"mode": "both"}),
    "hybrid0": ("/hybrid/search", {"hops": 0}),
    "hybrid1": ("/hybrid/search", {"hops": 1}),
    "hybrid2": ("/hybrid/search", {"hops": 2}),
    "hybrid": ("/hybrid/search", {}),
}


class Server:
    def __init__(self, binary, env):
        self.dir = tempfile.mkdtemp(prefix="ragbrain-eval-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # The search-result cache is off, so every mode's latency is that of a cold
        # search (hybrid modes would otherwise reuse the text searches of the one
        # before them).
        full_env = {**os.environ, "RAGBRAIN__LOG__LEVEL": "warn",
                    "RAGBRAIN__RATE_LIMIT__ENABLED": "false",
                    "RAGBRAIN__CACHE__SEARCH_TTL_SECS": "0", **env}
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.command = [binary, "serve", "--port", str(self.port), "--data-dir",
                        os.path.join(self.dir, "data")]
        self.env = full_env
        self.start()
        with open(os.path.join(self.dir, "data", "bootstrap-admin.key")) as f:
            self.key = f.read().strip()

    def start(self):
        """Starts the server process and waits until it answers."""
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while True:
            try:
                self.call("GET", "/health/live", key="")
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"the server did not start; see {self.log.name}")
                time.sleep(0.2)

    def crash_and_restart(self):
        """Kills the server with SIGKILL and starts it again on the same data and port."""
        self.proc.kill()
        self.proc.wait(timeout=60)
        self.start()

    def call(self, method, path, body=None, key=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {"Content-Type": "application/json"}
        key = self.key if key is None else key
        if key:
            headers["X-API-Key"] = key
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if resp.status >= 300:
            raise SystemExit(f"{method} {path}: {resp.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def stop(self, remove=True):
        """Stops the server; its data directory stays when `remove` is false."""
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


def release_binary():
    """Where `cargo build --release` puts the binary."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "ragbrain")


def ingest(server, corpus, poll=0.2, keys=None):
    """Posts `corpus` in batches of 100 (to the tenants of `keys` in turn; the bootstrap
    key's by default) and waits until the last one is done; returns paragraphs per
    second."""
    keys = keys or [server.key]
    started = time.time()
    for n, i in enumerate(range(0, len(corpus), 100)):
        key = keys[n % len(keys)]
        events = [{"id": p["id"], "text": f"{p['title']}\n{p['text']}",
                   "metadata": {"title": p["title"]}} for p in corpus[i:i + 100]]
        server.call("POST", "/ingest/batch", {"events": events}, key=key)
    last = corpus[-1]["id"]
    while server.call("GET", f"/ingest/{last}", key=key)["status"] not in ("processed", "failed"):
        time.sleep(poll)
    # The worker processes in order; the last one done means all are.
    return len(corpus) / (time.time() - started)


def wait_indexed(server, collection="documents", poll=0.2):
    """Waits until every point of `collection` is in an HNSW index and the merges that
    follow are done, so latency is measured without an optimisation beside it."""
    while True:
        info = server.call("GET", f"/vectors/collections/{collection}")
        if info["indexed_vectors_count"] >= info["points_count"] and not info.get("optimizing"):
            return
        time.sleep(poll)


def doc_ids(hits):
    seen, out = set(), []
    for h in hits:
        d = (h.get("payload") or {}).get("doc_id")
        if d is not None and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def evaluate(server, questions, mode, limit, hybrid_extra):
    path, extra = MODES[mode]
    if path == "/hybrid/search":
        extra = {**extra, **hybrid_extra}
    recalls = {2: [], 5: [], 10: []}
    latencies = []
    for q in questions:
        body = {"query": q["question"], "limit": limit, **extra} if path == "/hybrid/search" \
            else {"text": q["question"], "limit": limit, **extra}
        started = time.perf_counter()
        response = server.call("POST", path, body)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = doc_ids(response["hits"])
        gold = set(q["gold"])
        for k in recalls:
            recalls[k].append(len(gold & set(ranked[:k])) / len(gold))
    latencies.sort()
    return ({k: 100 * statistics.mean(v) for k, v in recalls.items()},
            latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--binary", help="a ragbrain binary (default: build the release one)")
    p.add_argument("--modes", default="vector,hybrid1,hybrid2,hybrid",
                   help="comma-separated, of: " + ", ".join(MODES))
    p.add_argument("--limit", type=int, default=20, help="hits asked for per question")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    p.add_argument("--hybrid", default="{}", help="JSON fields added to every hybrid request")
    p.add_argument("--indexed", action="store_true",
                   help="index every segment (threshold 1 KiB) and wait for the HNSW build "
                        "before asking, so the questions walk the graph, not an exact scan")
    args = p.parse_args()
    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--bin", "ragbrain"], cwd=ROOT, check=True)
        binary = release_binary()
    env = dict(kv.split("=", 1) for kv in args.env)
    if args.indexed:
        env.setdefault("RAGBRAIN__VECTORS__INDEXING_THRESHOLD_KB", "1")
    modes = args.modes.split(",")
    print(f"{'dataset':<18} {'mode':<8} {'R@2':>6} {'R@5':>6} {'R@10':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for path in args.datasets:
        with open(path) as f:
            data = json.load(f)
        server = Server(binary, env)
        try:
            rate = ingest(server, data["corpus"])
            print(f"# {data['name']}: {len(data['corpus'])} paragraphs ingested at {rate:.0f}/s",
                  file=sys.stderr)
            if args.indexed:
                wait_indexed(server)
            for mode in modes:
                recall, p50, p99 = evaluate(server, data["questions"], mode, args.limit,
                                            json.loads(args.hybrid))
                print(f"{data['name']:<18} {mode:<8} {recall[2]:6.1f} {recall[5]:6.1f} "
                      f"{recall[10]:6.1f} {p50:8.1f} {p99:8.1f}", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
