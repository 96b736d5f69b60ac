#!/usr/bin/env python3
"""Latency and recall of /vectors/search mode `both` by fusion window (standard library).

Starts the server like scripts/eval_retrieval.py (embedded stores, temporary data
directory, search cache off) with every segment indexed, ingests --paragraphs
paragraphs of the DATASETs (copies as scripts/bench_ingest.py makes them once the
datasets run out), waits for the HNSW builds to end, then asks every question
--rounds times in mode `both` for each limit, once without `rank_window` (the
default: the page's end) and once with each --windows value. It prints p50/p99 of the call
and recall at 10 of the gold paragraphs among the first ten distinct documents (a
copy `p~k` counts as `p`).

    scripts/bench_rank_window.py --binary target/release/ragbrain \\
        ../shared/eval-dev/musique_dev100.json
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ingest import load, paragraphs  # noqa: E402
from eval_retrieval import Server, doc_ids, ingest, release_binary, wait_indexed  # noqa: E402


def documents(hits):
    """The hits' documents in rank order, once each, a copy `p~k` counting as `p`."""
    return list(dict.fromkeys(d.split("~")[0] for d in doc_ids(hits)))


def ask(server, questions, limit, window, rounds):
    latencies, recalls = [], []
    for _ in range(rounds):
        for q in questions:
            body = {"text": q["question"], "limit": limit, "mode": "both"}
            if window is not None:
                body["rank_window"] = window
            started = time.perf_counter()
            hits = server.call("POST", "/vectors/search", body)["hits"]
            latencies.append((time.perf_counter() - started) * 1000)
            found = set(documents(hits)[:10])
            recalls.append(len(set(q["gold"]) & found) / len(q["gold"]))
    latencies.sort()
    return (latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)],
            100 * sum(recalls) / len(recalls))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--binary", help="a ragbrain binary (default: target/release/ragbrain)")
    p.add_argument("--paragraphs", type=int, help="default: the datasets' own, once")
    p.add_argument("--limits", default="10,20")
    p.add_argument("--windows", default="100", help="comma-separated windows beside the default")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    binary = args.binary or release_binary()
    corpus, questions = load(args.datasets)
    todo = list(paragraphs(corpus, args.paragraphs or len(corpus)))
    server = Server(binary, {"RAGBRAIN__VECTORS__INDEXING_THRESHOLD_KB": "1"})
    try:
        rate = ingest(server, todo)
        wait_indexed(server)
        points = server.call("GET", "/vectors/collections/documents")["points_count"]
        print(f"# {len(todo)} paragraphs ingested at {rate:.0f}/s, {points} chunks", file=sys.stderr)
        print(f"{'limit':>5} {'window':>8} {'p50 ms':>8} {'p99 ms':>8} {'R@10':>6}")
        for limit in map(int, args.limits.split(",")):
            for window in [None, *map(int, args.windows.split(","))]:
                p50, p99, recall = ask(server, questions, limit, window, args.rounds)
                name = "default" if window is None else str(window)
                print(f"{limit:>5} {name:>8} {p50:8.2f} {p99:8.2f} {recall:6.1f}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
