#!/usr/bin/env bash
# Load tests of the original plan's profile (DESIGN.md §11, §14) against a real server.
#
#   scripts/loadtest.sh [options] [scenario...]
#
# Builds the release binary (or takes --binary), starts it on a temporary data
# directory with embedded stores (--production: Redis, Kafka protocol and a Bolt server,
# started as the test command does), preloads 100k x 384 points, 1,000 entities and
# 10k ingested documents, runs each scenario and prints one table: requests/s,
# p50/p95/p99/max per request kind, errors, and the server's RSS after the scenario
# (and its anonymous part: the rest is page cache of the files the engines map).
#
# Scenarios: mix (default), read, write, soak, writers (tests/load/k6/*.js; writers is
# 16 writers of one kind, KIND=upsert|node|ingest in the environment) and locust
# (tests/load/locustfile.py, headless). Options:
#   --binary PATH      server binary (default: cargo build --release)
#   --production       production backends instead of the embedded stores
#   --points N --entities N --docs N   preload sizes (100000, 1000, 10000)
#   --vus N --duration D               k6 virtual users and duration (64, 60s)
#   --users N                          Locust users (64)
#   --server-cpus LIST --load-cpus LIST  pin the server / the load tools (taskset -c)
#   --smoke            5 s of mix and of locust on a tiny preload with few users;
#                      fails unless every response is 2xx (the test command runs it)
# k6 and Locust come from scripts/test-requirements.txt (pinned by hash), installed
# into the test venv ($RAGBRAIN_VENV, default ~/.cache/ragbrain/venv) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" production=0 smoke=0
points=100000 entities=1000 docs=10000 vus=64 duration=60s users=64
server_cpus="" load_cpus=""
scenarios=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --production) production=1; shift ;;
    --points) points=$2; shift 2 ;;
    --entities) entities=$2; shift 2 ;;
    --docs) docs=$2; shift 2 ;;
    --vus) vus=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --server-cpus) server_cpus=$2; shift 2 ;;
    --load-cpus) load_cpus=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) scenarios+=("$1"); shift ;;
  esac
done
if [[ $smoke == 1 ]]; then
  points=2000 entities=50 docs=20 vus=4 duration=5s users=4
  [[ ${#scenarios[@]} -gt 0 ]] || scenarios=(mix locust)
fi
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(mix)

# shellcheck source=scripts/test-venv.sh
source scripts/test-venv.sh

if [[ -z $binary ]]; then
  echo "==> cargo build --release"
  cargo build --release --quiet
  binary="${CARGO_TARGET_DIR:-target}/release/ragbrain"
fi

pin() { # pin CPUS command...: run command on CPUS when given
  local cpus=$1; shift
  if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

work=$(mktemp -d)
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The log level may come from the environment, to trace the server under load.
env_args=("RAGBRAIN__LOG__LEVEL=${RAGBRAIN__LOG__LEVEL:-warn}" RAGBRAIN__RATE_LIMIT__ENABLED=false)
config_args=()
if [[ $production == 1 ]]; then
  # shellcheck source=scripts/backends/start.sh
  source scripts/backends/start.sh
  trap 'cleanup; stop_backends' EXIT
  await_backends
  run_id="load$$"
  config_args=(--config config/production.toml)
  env_args+=(
    RAGBRAIN__AUTH__JWT_SECRET=load-test-secret-of-at-least-thirty-two-bytes
    "RAGBRAIN__REDIS__URL=$RAGBRAIN_TEST_REDIS_URL" "RAGBRAIN__REDIS__KEY_PREFIX=$run_id:"
    "RAGBRAIN__EVENTS__KAFKA_BROKERS=$RAGBRAIN_TEST_KAFKA_BROKERS"
    "RAGBRAIN__EVENTS__TOPIC=$run_id.ingest" "RAGBRAIN__EVENTS__DEAD_LETTER_TOPIC=$run_id.dead"
    "RAGBRAIN__EVENTS__GROUP_ID=$run_id-workers" RAGBRAIN__EVENTS__REPLICATION=1
    "RAGBRAIN__GRAPH__NEO4J_URI=$RAGBRAIN_TEST_BOLT_URI"
    "RAGBRAIN__GRAPH__NEO4J_USER=$RAGBRAIN_TEST_BOLT_USER"
    "RAGBRAIN__GRAPH__NEO4J_PASSWORD=$RAGBRAIN_TEST_BOLT_PASSWORD"
  )
  if [[ -n ${QDRANT_URL:-} ]]; then
    env_args+=(RAGBRAIN__VECTORS__BACKEND=qdrant "RAGBRAIN__VECTORS__QDRANT_URL=$QDRANT_URL")
  else
    env_args+=(RAGBRAIN__VECTORS__BACKEND=embedded)
  fi
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# taskset and env exec the server, so $! is the server itself.
server=(env "${env_args[@]}" "$binary" serve "${config_args[@]}" --host 127.0.0.1 --port "$port"
  --data-dir "$work/data")
[[ -z $server_cpus ]] || server=(taskset -c "$server_cpus" "${server[@]}")
"${server[@]}" >/dev/null 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 300); do
  curl -fs "$base/health/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
key=$(cat "$work/data/bootstrap-admin.key")
echo "==> preloading $points points, $entities entities, $docs documents"
"$venv/bin/python" tests/load/preload.py --url "$base" --key "$key" \
  --points "$points" --entities "$entities" --docs "$docs"

# Resident memory, and the part of it that is the server's own (anonymous) memory: the
# rest is the page cache of files the engines map (segments, logs), which the kernel
# reclaims under pressure.
rss() {
  awk '/^VmRSS:/ { all = $2 } /^RssAnon:/ { anon = $2 }
       END { printf "%.0f MiB (anon %.0f)", all / 1024, anon / 1024 }' "/proc/$server_pid/status"
}

failed=0
# Results go under "<n>-<scenario>", so a scenario may run twice (`read write read`:
# reads before and after a burst of writes).
n=0
for scenario in "${scenarios[@]}"; do
  n=$((n + 1))
  run="$work/$n-$scenario"
  echo "==> $scenario"
  if [[ $scenario == locust ]]; then
    RAGBRAIN_API_KEY=$key pin "$load_cpus" "$venv/bin/locust" -f tests/load/locustfile.py \
      --headless --host "$base" --users "$users" --spawn-rate "$users" --run-time "$duration" \
      --csv "$run" --only-summary --loglevel WARNING >"$run.out" 2>&1 || failed=1
  else
    BASE_URL=$base API_KEY=$key VUS=$vus DURATION=$duration pin "$load_cpus" "$venv/bin/k6" run \
      --quiet --no-color --summary-export "$run.json" "tests/load/k6/$scenario.js" \
      >"$run.out" 2>&1 || failed=1
  fi
  echo "rss $(rss)" >"$run.rss"
done

"$venv/bin/python" - "$work" "${scenarios[@]}" <<'EOF'
import csv, json, os, sys
work, scenarios = sys.argv[1], sys.argv[2:]
print(f"{'scenario':<8} {'kind':<10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}  rss")
for n, s in enumerate(scenarios, 1):
    run = os.path.join(work, f"{n}-{s}")
    rss = open(run + ".rss").read().split(" ", 1)[1].strip()
    if s == "locust":
        path = run + "_stats.csv"
        if not os.path.exists(path):
            print(f"{s:<8} (no result; see its output)"); continue
        for row in csv.DictReader(open(path)):
            name = "all" if row["Name"] == "Aggregated" else row["Name"].strip("/")
            print(f"{s:<8} {name[:10]:<10} {float(row['Requests/s']):>8.1f} {row['50%']:>8} {row['95%']:>8} "
                  f"{row['99%']:>8} {float(row['Max Response Time']):>8.0f} {row['Failure Count']:>7}  {rss}")
        continue
    path = run + ".json"
    if not os.path.exists(path):
        print(f"{s:<8} (no result; see its output)"); continue
    m = json.load(open(path))["metrics"]
    seconds = m["http_reqs"]["count"] / m["http_reqs"]["rate"] if m["http_reqs"]["rate"] else 1
    errors = m.get("http_req_failed", {}).get("passes", 0)
    rows = [("all", m["http_req_duration"], m["http_reqs"]["count"])]
    for k in ["search", "find", "ingest", "upsert", "node"]:
        t = m.get(f"http_req_duration{{kind:{k}}}")
        if t and t.get("count"):
            rows.append((k, t, t["count"]))
    for kind, t, count in rows:
        print(f"{s:<8} {kind:<10} {count / seconds:>8.1f} {t['med']:>8.1f} {t['p(95)']:>8.1f} "
              f"{t['p(99)']:>8.1f} {t['max']:>8.1f} {errors if kind == 'all' else '':>7}  {rss if kind == 'all' else ''}")
EOF
if [[ $failed != 0 ]]; then
  echo "==> a scenario failed its thresholds (a non-2xx response, or a soak request over 1 s):" >&2
  for f in "$work"/*.out; do echo "--- $f" >&2; tail -25 "$f" >&2; done
  exit 1
fi
