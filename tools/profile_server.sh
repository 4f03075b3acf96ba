#!/bin/bash
# perf profile (cpu-clock, DWARF call graphs) of `secret-ledger serve` (profiling build) under
# `loadgen run --workload get|put --clients 64`. Needs: cargo build --profile profiling -p secret-ledger
# and cargo build --release -p ledger-loadgen. Prints the load figures and the top symbols;
# `perf report -i DIR/perf.data --children` for the call tree.
W=$(mktemp -d /tmp/prof.XXXX)
$(cd "$(dirname "$0")/.." && pwd)/target/profiling/secret-ledger serve --data-dir $W/data --listen 127.0.0.1:0 > $W/log 2>&1 &
PID=$!
for i in $(seq 50); do grep -q listening $W/log && break; sleep 0.2; done
EP=$(grep -o 'http://[0-9.:]*' $W/log | head -1)
IFS=: read AK SK < $W/data/credentials
$(cd "$(dirname "$0")/.." && pwd)/target/release/loadgen run --endpoint $EP --access-key-id $AK --secret-access-key $SK --workload $1 --clients 64 --seconds 10 --server-pid $PID > $W/lg.txt 2>&1 &
LG=$!
sleep 4
perf record -e cpu-clock -F 299 --call-graph dwarf,16384 -p $PID -o $W/perf.data -- sleep 6 >/dev/null 2>&1
wait $LG
kill $PID; wait $PID 2>/dev/null
grep -E "ops:|server CPU" $W/lg.txt
perf report -i $W/perf.data --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -45
echo DIR $W
