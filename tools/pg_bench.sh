#!/usr/bin/env bash
# Durable PutSecretValue over HTTP with 64 clients: sled, PostgreSQL with one server, and
# PostgreSQL with two servers on one database (32 clients each), on a throwaway local cluster.
# Run as root (the cluster runs as the postgres user) after:
#   cargo build --release -p secret-ledger -p ledger-loadgen
# Figures in docs/PERFORMANCE.md ("PostgreSQL").
set -euo pipefail
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
P=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
W=$(mktemp -d /tmp/pg-bench.XXXX); chown postgres "$W"
runuser -u postgres -- "$P/initdb" -D "$W/data" -A trust -U ledger >/dev/null
runuser -u postgres -- "$P/pg_ctl" -D "$W/data" -l "$W/log" -o "-c listen_addresses='' -k $W -p 5998" -w start >/dev/null
trap 'runuser -u postgres -- "$P/pg_ctl" -D "$W/data" -m fast stop >/dev/null; kill $(cat "$W"/*.pid 2>/dev/null) 2>/dev/null || true' EXIT
runuser -u postgres -- "$P/psql" -h "$W" -p 5998 -U ledger -d postgres -c "CREATE DATABASE one" -c "CREATE DATABASE two" >/dev/null
URL1="host=$W port=5998 user=ledger dbname=one"; URL2="host=$W port=5998 user=ledger dbname=two"
start() { # name extra args...
  local dir=$W/$1; shift
  mkdir -p "$dir"; [ -f "$W/a/credentials" ] && cp "$W/a/credentials" "$W/a/master.key" "$dir/"
  "$B/secret-ledger" serve --data-dir "$dir" --listen 127.0.0.1:0 "$@" > "$dir.log" 2>&1 &
  echo $! > "$dir.pid"
  for _ in $(seq 50); do grep -q listening "$dir.log" 2>/dev/null && break; sleep 0.2; done
  grep -o 'http://[0-9.:]*' "$dir.log" | head -1
}
run() { # endpoint name clients
  IFS=: read -r AK SK < "$W/a/credentials"
  "$B/loadgen" run --endpoint "$1" --access-key-id "$AK" --secret-access-key "$SK" --workload put \
    --clients "$3" --seconds 10 --server-pid "$(cat "$W/$2.pid")" 2>&1 | grep -E "ops:|latency|errors|server CPU" | sed "s/^/$2 /"
}
stop() { kill "$(cat "$W/$1.pid")"; wait "$(cat "$W/$1.pid")" 2>/dev/null || true; rm "$W/$1.pid"; }
E=$(start a); run "$E" a 64; stop a
E=$(start pg1 --database-url "$URL1"); run "$E" pg1 64; stop pg1
E1=$(start n1 --database-url "$URL2"); E2=$(start n2 --database-url "$URL2")
run "$E1" n1 32 & R1=$!; run "$E2" n2 32 & R2=$!; wait $R1 $R2
stop n1; stop n2
"$B/secret-ledger" verify --data-dir "$W/n1" --database-url "$URL2"
