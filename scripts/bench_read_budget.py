#!/usr/bin/env python3
"""Peak memory of many large search answers at once (standard library).

Starts the server like scripts/eval_retrieval.py (embedded stores, temporary data
directory), stores --points points of dimension 4 with --payload-byte payloads, then
sends --clients concurrent searches for all of them with payloads, each client waiting
--hold seconds after the answer's headers before it reads the body (0: at once). It
prints the server's peak RSS (VmHWM) before and after, the time the searches took and
how many were not 200 (what limits.read_budget_bytes bounds: docs/ARCHITECTURE.md,
"Memory for large answers").

    scripts/bench_read_budget.py --binary target/release/ragbrain --hold 5
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_retrieval import Server, release_binary  # noqa: E402


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) // 1024
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", help="a ragbrain binary (default: target/release/ragbrain)")
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--payload", type=int, default=60000, help="bytes of each point's payload text")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--hold", type=float, default=0, help="seconds each client waits before reading")
    args = p.parse_args()
    server = Server(args.binary or release_binary(), {})
    try:
        server.call("PUT", "/vectors/collections/big", {"dim": 4, "distance": "cosine"})
        text = "x" * args.payload
        for start in range(0, args.points, 50):
            ids = range(start, min(start + 50, args.points))
            points = [{"id": i, "vector": [1.0, float(i), 0.5, 0.25], "payload": {"text": text}}
                      for i in ids]
            server.call("POST", "/vectors/upsert", {"collection": "big", "points": points})
        time.sleep(2)
        before = peak_rss_mb(server.proc.pid)
        body = json.dumps({"collection": "big", "vector": [1, 0, 0, 0],
                           "limit": args.points, "with_payload": True})
        statuses = []

        def search():
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
            conn.request("POST", "/vectors/search", body,
                          {"Content-Type": "application/json", "X-API-Key": server.key})
            resp = conn.getresponse()
            time.sleep(args.hold)
            resp.read()
            statuses.append(resp.status)
            conn.close()

        started = time.time()
        clients = [threading.Thread(target=search) for _ in range(args.clients)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        took = time.time() - started
        failed = [s for s in statuses if s != 200]
        print(f"{args.clients} searches of {args.points} points with {args.payload}-byte payloads, "
              f"hold {args.hold} s: {took:.1f} s; peak RSS {before} MB before, "
              f"{peak_rss_mb(server.proc.pid)} MB after; not 200: {len(failed)} {sorted(set(failed))}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
