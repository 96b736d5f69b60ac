#!/usr/bin/env python3
"""Ingest rate as the graph grows, and hybrid latency at the size reached (standard library).

Starts the server like scripts/eval_retrieval.py (embedded stores, temporary data
directory), then ingests the paragraphs of the DATASETs again and again (copy k of
paragraph p gets document id "p~k"; its text and title stay, so every entity's mention
count grows with each copy, as hubs do in a real corpus) until --paragraphs have gone in.
It posts them in blocks of --block paragraphs (batches of 100) and waits for each block
to be processed before the next, then prints each block's rate, 202 to processed. With
--tenants N the batches go round-robin to N tenants (the bootstrap key's and N-1 made
for the run), as a server shared by several applications sees them. Last,
it asks every question of the datasets through /hybrid/search at hops 1 and 2 and prints
p50/p99 latency at that corpus size (recall is not measured: the copies share text).

    scripts/bench_ingest.py --binary target/release/ragbrain --paragraphs 10000 \\
        ../shared/eval-dev/musique_dev100.json ../shared/eval-dev/hotpotqa_dev100.json
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_retrieval import Server, ingest, release_binary  # noqa: E402


def load(datasets):
    """Every paragraph and every question of the DATASET files, in order."""
    corpus, questions = [], []
    for path in datasets:
        with open(path) as f:
            data = json.load(f)
        corpus.extend(data["corpus"])
        questions.extend(data["questions"])
    return corpus, questions


def paragraphs(corpus, total):
    copy = 0
    while True:
        for p in corpus:
            yield {"id": p["id"] if copy == 0 else f"{p['id']}~{copy}",
                   "title": p["title"], "text": p["text"]}
            total -= 1
            if total == 0:
                return
        copy += 1


def hub_corpus(total):
    """`total` paragraphs that each name one hub ("Paris") beside two names of their
    own, sorting after it: every document adds new partners to the hub, as a real
    corpus does and the dev sets' repeated copies do not."""
    syllables = ["ra", "ven", "tor", "sul", "mik", "dan", "vel", "zor", "qin", "wes"]

    def name(n):
        return "Z" + "".join(syllables[(n // 10 ** k) % 10] for k in range(5))

    for i in range(total):
        a, b = name(2 * i), name(2 * i + 1)
        yield {"id": f"hub{i}", "title": f"{a} in Paris",
               "text": f"Paris welcomed {a} and {b} last spring."}


def documents(items, join):
    """Every `join` consecutive paragraphs as one document (titled by the first), for
    documents of a chosen size: the dev sets' paragraphs average about 510 bytes."""
    for i in range(0, len(items), join):
        group = items[i:i + join]
        yield {"id": group[0]["id"] if join == 1 else f"{group[0]['id']}+{len(group) - 1}",
               "title": group[0]["title"],
               "text": "\n\n".join(g["text"] for g in group)}


def tenant_keys(server, n):
    """The bootstrap key, then a key for each of n-1 tenants of their own."""
    keys = [server.key]
    for t in range(1, n):
        made = server.call("POST", "/auth/api-keys",
                           {"name": f"bench{t}", "tenant": f"bench{t}", "scopes": ["write"]})
        keys.append(made["key"])
    return keys


def latency(server, questions, hops):
    times = []
    for q in questions:
        started = time.perf_counter()
        server.call("POST", "/hybrid/search", {"query": q["question"], "limit": 20, "hops": hops})
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--binary", help="a ragbrain binary (default: target/release/ragbrain)")
    p.add_argument("--paragraphs", type=int, default=10_000)
    p.add_argument("--block", type=int, default=1_000, help="documents per block")
    p.add_argument("--hub", action="store_true",
                   help="synthetic paragraphs that all name one hub entity, instead of the datasets")
    p.add_argument("--join", type=int, default=1,
                   help="paragraphs per document (2 gives documents of about 1 KB)")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    p.add_argument("--keep", type=float, default=0,
                   help="seconds to keep the server up at the end (its port and key are printed)")
    p.add_argument("--tenants", type=int, default=1,
                   help="tenants the batches are spread over, round-robin")
    args = p.parse_args()
    binary = args.binary or release_binary()
    corpus, questions = load(args.datasets)
    source = hub_corpus(args.paragraphs) if args.hub else paragraphs(corpus, args.paragraphs)
    todo = list(documents(list(source), args.join))
    size = sum(len(d["text"].encode()) for d in todo) / len(todo)
    print(f"{len(todo)} documents of {size:.0f} bytes on average", flush=True)
    server = Server(binary, dict(kv.split("=", 1) for kv in args.env))
    try:
        keys = tenant_keys(server, args.tenants)
        print(f"{'documents':>12} {'chunks':>8} {'block rate /s':>14}")
        for i in range(0, len(todo), args.block):
            rate = ingest(server, todo[i:i + args.block], poll=0.05, keys=keys)
            chunks = sum(server.call("GET", "/vectors/collections/documents", key=k)["points_count"]
                         for k in keys)
            print(f"{i + args.block:>12} {chunks:>8} {rate:>14.0f}", flush=True)
        for hops in (1, 2):
            p50, p99 = latency(server, questions, hops)
            print(f"hybrid hops {hops}: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"({len(questions)} questions)", flush=True)
        if args.keep:
            print(f"serving on port {server.port} with key {server.key} for {args.keep:.0f} s",
                  flush=True)
            time.sleep(args.keep)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
