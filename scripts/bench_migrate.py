#!/usr/bin/env python3
"""What `ragbrain migrate` costs (standard library).

Starts the server like scripts/eval_retrieval.py (embedded stores, temporary data
directory), ingests --paragraphs paragraphs of the DATASETs (copies get ids "p~k", as in
scripts/bench_ingest.py), stops it, and times `ragbrain migrate` from that directory into
the stores of --to (a configuration file; by default embedded stores in a new temporary
directory). Prints each step's time, the command's count table and the total time.

    scripts/bench_migrate.py --binary target/release/ragbrain --paragraphs 10000 \\
        ../shared/eval-dev/musique_dev100.json ../shared/eval-dev/hotpotqa_dev100.json
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ingest import load, paragraphs  # noqa: E402
from eval_retrieval import Server, ingest, release_binary  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--binary", help="a ragbrain binary (default: target/release/ragbrain)")
    p.add_argument("--paragraphs", type=int, default=10_000)
    p.add_argument("--to", help="the target's configuration (default: embedded stores in a "
                                "temporary directory)")
    args = p.parse_args()
    binary = args.binary or release_binary()
    corpus, _ = load(args.datasets)
    docs = list(paragraphs(corpus, args.paragraphs))
    # A tenant of its own: a production target may be shared (its count check would
    # see other runs' data).
    server = Server(binary, {"RAGBRAIN__AUTH__BOOTSTRAP_TENANT": f"bench{int(time.time())}"})
    work = tempfile.mkdtemp(prefix="ragbrain-migrate-")
    try:
        for i in range(0, len(docs), 1000):
            ingest(server, docs[i:i + 1000], poll=0.05)
        server.stop(remove=False)
        source = os.path.join(work, "source.toml")
        with open(source, "w") as f:
            f.write(f"[server]\ndata_dir = {json.dumps(os.path.join(server.dir, 'data'))}\n")
        target = args.to
        if target is None:
            target = os.path.join(work, "target.toml")
            with open(target, "w") as f:
                f.write(f"[server]\ndata_dir = {json.dumps(os.path.join(work, 'data'))}\n")
        env = {"RAGBRAIN__LOG__LEVEL": "warn", **os.environ}
        started = time.perf_counter()
        done = subprocess.run(
            [binary, "migrate", "--from-config", source, "--to-config", target,
             "--state", os.path.join(work, "state.json")],
            env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        print(done.stderr, end="")
        print(done.stdout, end="")
        if done.returncode != 0:
            raise SystemExit(f"migrate failed ({done.returncode}):\n{done.stderr}")
        print(f"{len(docs)} documents migrated in {elapsed:.1f} s", flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
