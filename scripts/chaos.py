#!/usr/bin/env python3
"""Concurrent random operations on a few shared names (standard library).

Creates and drops a few collections, upserts, searches and deletes in them, indexes
their payloads, ingests and deletes documents, writes, links, reads and deletes a few
graph nodes, runs client Cypher, API keys, audit reads and snapshots, all at once from
--clients threads for --seconds, and prints the statuses seen. It fails (exit 1) on any
5xx other than the 501 of a capability the server has off, and on any status outside
what these requests may get (2xx, 404, 409, 422, 429). Races between requests on the
same names are what it looks for: each bug it found is now a test of its own
(docs/ARCHITECTURE.md, "Forked children hold the engine's WAL lock for a moment" and
"Three more answers are lost races").

Then it checks what the races left: every document's status settles within 120 s,
and no chunk outlives its document. A deleted or failed document has no chunk in any
collection (a search never returns a failed document) and no node in the graph. A
processed one has its status's chunk count in the graph, at most that many chunks in
its status's collection (a drop may have taken them) and none in another. Collections
are created with 4 dimensions or with the embedder's, so documents land in several.

    scripts/chaos.py --binary target/debug/ragbrain            # embedded stores
    scripts/chaos.py --binary B --crash-every 10               # kill -9 and restart too

A server started with --binary takes its settings from the environment, so
RAGBRAIN_CONFIG=config/production.toml and the backends' addresses (as
scripts/loadtest.sh --production sets them) run it, crashes included, on Redis, Kafka
and Bolt.
    scripts/chaos.py --url http://127.0.0.1:8080 --key "$KEY"  # a server of yours

Run it against a debug build too: its overflow checks turn arithmetic bugs into panics.
"""

import argparse
import collections
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_retrieval import Server  # noqa: E402

COLLECTIONS = ["c0", "c1", "c2"]
DOCS = [f"d{i}" for i in range(6)]
NODES = [f"n{i}" for i in range(6)]
TEXT = "Ada Lovelace met Charles Babbage in London. Lisbon is in Portugal. "
EXPECTED = {200, 201, 202, 204, 404, 409, 422, 429}
EMBED_DIM = [256]  # the built-in embedder's; main() reads it from the server


def vector():
    return [random.uniform(-1, 1) for _ in range(4)]


def request():
    """One random request: (method, path, body)."""
    c = random.choice(COLLECTIONS)
    doc, node, other = random.choice(DOCS), random.choice(NODES), random.choice(NODES)
    points = [{"id": random.randrange(50), "vector": vector(),
               "payload": {"text": "alpha beta", "k": random.randrange(3)}} for _ in range(5)]
    choices = [
        ("PUT", f"/vectors/collections/{c}", {"dim": random.choice([4, EMBED_DIM[0]]),
                                               "distance": random.choice(["cosine", "dot"])}),
        ("DELETE", f"/vectors/collections/{c}", None),
        ("GET", f"/vectors/collections/{c}", None),
        ("POST", "/vectors/upsert", {"collection": c, "points": points}),
        ("POST", "/vectors/search", {"collection": c, "vector": vector(), "limit": 5, "with_payload": True}),
        ("POST", "/vectors/search", {"collection": c, "text": "alpha", "limit": 5,
                                     "mode": random.choice(["dense", "lexical", "both"])}),
        ("POST", "/vectors/retrieve", {"collection": c, "ids": [random.randrange(50) for _ in range(3)]}),
        ("POST", "/vectors/delete", {"collection": c, "ids": [random.randrange(50)]}),
        ("POST", "/vectors/delete", {"collection": c, "filter": {
            "must": [{"key": "k", "match": {"value": random.randrange(3)}}]}}),
        ("PUT", f"/vectors/collections/{c}/index", {"field": "k", "type": random.choice(["integer", "keyword"])}),
        ("DELETE", f"/vectors/collections/{c}/index/k", None),
        ("POST", "/ingest", {"id": doc, "text": TEXT * random.randint(1, 5),
                             "collection": random.choice(COLLECTIONS + ["documents"])}),
        ("POST", "/ingest/batch", {"events": [{"id": random.choice(DOCS), "text": TEXT, "collection": c}
                                              for _ in range(3)]}),
        ("DELETE", f"/ingest/{doc}", None),
        ("GET", f"/ingest/{doc}", None),
        ("POST", "/hybrid/search", {"query": "Ada Lovelace London", "hops": random.randint(0, 3), "limit": 5,
                                    "collection": random.choice(COLLECTIONS + ["documents"])}),
        ("POST", "/graphs/node", {"id": node, "labels": ["Person"], "properties": {"age": random.randrange(90)}}),
        ("POST", "/graphs/relationship", {"from": node, "to": other, "type": "KNOWS", "properties": {"w": 1}}),
        ("DELETE", f"/graphs/node/{node}", None),
        ("GET", f"/graphs/node/{node}", None),
        ("POST", "/graphs/neighbors", {"id": node, "hops": random.randint(1, 3), "direction": "both"}),
        ("POST", "/graphs/node/find", {"label": "Person", "limit": 10}),
        ("POST", "/graphs/query", {"query": "MATCH (n:Person) RETURN n.id LIMIT 5"}),
        ("POST", "/auth/api-keys", {"name": f"k{random.randrange(5)}", "scopes": ["read"]}),
        ("GET", "/auth/api-keys", None),
        ("GET", "/audit?limit=5", None),
        ("GET", "/admin/snapshots", None),
    ]
    if random.random() < 0.03:
        return "POST", "/admin/snapshots", None
    return random.choice(choices)


def client(url, key, deadline, seen, odd, lock, crashes):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    while time.time() < deadline:
        method, path, body = request()
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            status, text = response.status, response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            status, text = 0, repr(e)
        with lock:
            seen[status] += 1
            off = status == 501 and "not-configured" in text
            killed = status == 0 and crashes  # the connection of a request the kill cut
            if status not in EXPECTED and not off and not killed:
                odd.append((status, method, path, text[:300]))


def call(url, key, method, path, body=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    status, text = response.status, response.read().decode("utf-8", "replace")
    conn.close()
    return status, (json.loads(text) if text else None)


def settled(url, key, doc):
    """The document's final status (None for 404), or "stuck" after 120 s pending."""
    deadline = time.time() + 120
    while time.time() < deadline:
        status, body = call(url, key, "GET", f"/ingest/{doc}")
        if status == 404:
            return None
        if body["status"] != "pending":
            return body
        time.sleep(0.5)
    return "stuck"


def chunks_left(url, key, collection, doc):
    """How many chunk points of `doc` `collection` holds (None: no such collection)."""
    status, info = call(url, key, "GET", f"/vectors/collections/{collection}")
    if status == 404:
        return None
    status, hits = call(url, key, "POST", "/vectors/search", {
        "collection": collection, "vector": [1.0] * info["dim"], "limit": 1000,
        "filter": {"must": [{"key": "doc_id", "match": {"value": doc}}]}})
    assert status == 200, (status, hits)
    return len(hits["hits"])


def check(url, key):
    """What the races left behind, as a list of problems, and a line of what was seen."""
    problems, finals, placed = [], collections.Counter(), 0
    for doc in DOCS:
        final = settled(url, key, doc)
        if final == "stuck":
            problems.append(f"{doc} still pending after 120 s")
            continue
        finals["gone" if final is None else f"{final['status']} {final['operation']}"] += 1
        kept = final is not None and final["status"] == "processed" and final["operation"] == "upsert"
        status, graph = call(url, key, "POST", "/graphs/query", {
            "query": ("MATCH (d:Document {id: $id}) OPTIONAL MATCH (c)-[:PART_OF]->(d) "
                      "RETURN d.id AS id, count(c) AS n"),
            "params": {"id": f"doc:{doc}"}})
        if status == 200:  # 501 where client Cypher is off
            in_graph = graph["rows"][0][1] if graph["rows"] else None
            if in_graph != (final["chunks"] if kept else None):
                problems.append(f"{doc}: the graph has {in_graph} of its chunks; status {final}")
        for c in COLLECTIONS + ["documents"]:
            n = chunks_left(url, key, c, doc)
            if not n:
                continue
            placed += 1
            if not kept or c != final["collection"] or n > final.get("chunks", 0):
                problems.append(f"{doc}: {n} chunks left in {c}; status {final}")
    seen = f"documents: {dict(sorted(finals.items()))}; collections holding chunks of them: {placed}"
    return problems, seen


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", help="a ragbrain binary to start on a temporary data directory")
    p.add_argument("--url", help="a running server instead")
    p.add_argument("--key", help="an admin key of --url's bootstrap tenant")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--crash-every", type=float, metavar="S",
                   help="with --binary: kill -9 the server every S seconds and start it again")
    args = p.parse_args()
    if args.crash_every and not args.binary:
        p.error("--crash-every needs --binary")
    server = None
    if args.url:
        url, key = args.url, args.key
    elif args.binary:
        server = Server(args.binary, {})
        url, key = f"http://127.0.0.1:{server.port}", server.key
    else:
        p.error("give --binary, or --url and --key")
    status, info = call(url, key, "GET", "/vectors/collections/documents")
    if status == 404:
        call(url, key, "POST", "/ingest", {"id": "dim", "text": TEXT})
        settled(url, key, "dim")
        status, info = call(url, key, "GET", "/vectors/collections/documents")
    EMBED_DIM[0] = info["dim"]
    seen, odd, lock = collections.Counter(), [], threading.Lock()
    deadline = time.time() + args.seconds
    threads = [threading.Thread(target=client, args=(url, key, deadline, seen, odd, lock, args.crash_every))
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    crashes = 0
    while args.crash_every and time.time() + args.crash_every < deadline:
        time.sleep(args.crash_every)
        server.crash_and_restart()
        crashes += 1
    for t in threads:
        t.join()
    if crashes:
        print(f"{crashes} kill -9 and restarts")
    problems, checked = check(url, key)
    if server:
        server.stop(remove=not (odd or problems))
        if odd or problems:
            print(f"the server's data and log stay in {server.dir}")
    print(f"{sum(seen.values())} requests; statuses: {dict(sorted(seen.items()))}")
    print(f"after them, {checked}")
    shown = set()
    for status, method, path, text in odd:
        if (status, method, path.split("/")[1]) not in shown:
            shown.add((status, method, path.split("/")[1]))
            print(f"unexpected {status} from {method} {path}: {text}")
    for problem in problems:
        print(f"left behind: {problem}")
    sys.exit(1 if odd or problems else 0)


if __name__ == "__main__":
    main()
