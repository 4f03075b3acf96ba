#!/bin/bash
# Instructions per request of `secret-ledger serve` under load, counted by callgrind (stable on
# a busy machine, unlike CPU time). Usage: tools/callgrind_server.sh BIN get|put SECRETS
# (e.g. target/release/secret-ledger get 64). Needs valgrind and a release build of loadgen.
# Callgrind runs SHA-256 without the CPU's SHA extensions: SigV4 weighs more here than natively.
set -eu
BIN=$1; WL=$2; SEC=${3:-64}
W=$(mktemp -d /tmp/cgserve.XXXX)
valgrind --tool=callgrind --callgrind-out-file=$W/cg.out $BIN serve --data-dir $W/data --listen 127.0.0.1:0 > $W/log 2>$W/err &
PID=$!
for i in $(seq 300); do grep -q listening $W/log && break; sleep 0.2; done
EP=$(grep -o 'http://[0-9.:]*' $W/log | head -1 || true)
[ -n "$EP" ] || { echo "serve did not start under valgrind: see $W/err" >&2; kill $PID; exit 1; }
IFS=: read AK SK < $W/data/credentials
LG="$(cd "$(dirname "$0")/.." && pwd)/target/release/loadgen run --endpoint $EP --access-key-id $AK --secret-access-key $SK --workload $WL --clients 16 --secrets $SEC --warmup 0"
$LG --seconds 2 > /dev/null 2>&1                      # warm up (and create this run's secrets)
callgrind_control -z $PID > /dev/null 2>&1                # count from here
OPS=$($LG --seconds 6 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"])')
[ -n "$OPS" ] || { echo "the measured loadgen run failed" >&2; kill $PID; exit 1; }
callgrind_control -d $PID > /dev/null 2>&1                # dump what was counted
sleep 1
kill $PID; wait $PID 2>/dev/null || true
# The dump of the measured window (cg.out.1; cg.out itself is written at exit, after zeroing).
IR=$(callgrind_annotate $W/cg.out.1 2>/dev/null | grep "PROGRAM TOTALS" | tr -d ',' | awk '{print $1}')
echo "ops=$OPS instructions=$IR per_op=$(python3 -c "print(round($IR/$OPS))") dir=$W"
