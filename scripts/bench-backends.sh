#!/usr/bin/env bash
# Round trips to each production backend through the server versus alone (see
# benches/backends.rs): starts the same loopback servers as the test command, then runs
# the bench in the release profile. Set QDRANT_URL to include a Qdrant server.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ragbrain/target}"
# shellcheck source=scripts/backends/start.sh
source scripts/backends/start.sh
cargo bench --bench backends --no-run --quiet
await_backends
cargo bench --bench backends
