#!/usr/bin/env bash
# Memory per idle logged-in session: PSS of a server's process tree before and while COUNT
# sessions (default 10,000) sit logged in. Usage: bench/idle.sh PORT PID [COUNT]
# One login first, so that memory every server keeps after its first login (Ferry's pooled
# argon2 buffer, 19 MiB) counts in "before"; start the server fresh, as memory freed by
# earlier workloads would otherwise be reused and hide the sessions' cost.
set -euo pipefail
port=$1 pid=$2 count=${3:-10000}
H=${BENCH:-$(cd "$(dirname "$0")/../../shared/bench" && pwd)}
ulimit -n 20000
curl -s -u bench:bench "ftp://127.0.0.1:$port/" > /dev/null
sleep 1
before=$(python3 "$H/tree_mem.py" "$pid")
out=$(mktemp)
python3 "$H/ftpbench.py" idle --port "$port" --count "$count" --hold 15 > "$out" 2>&1 &
for _ in $(seq 1 300); do grep -q held "$out" && break; sleep 1; done
sleep 3
during=$(python3 "$H/tree_mem.py" "$pid")
wait
python3 - "$before" "$during" "$(head -1 "$out")" <<'PY'
import json, sys
b, d, r = (json.loads(x) for x in sys.argv[1:4])
held = r.get("held", 0)
print(json.dumps(dict(before=b, during=d, held=held,
                      kib_per_session=round((d["pss_kib"] - b["pss_kib"]) / max(held, 1), 2))))
PY
rm -f "$out"
