#!/usr/bin/env bash
# How cost grows with work, on Ferry and the peers of ../shared/bench, in one interleaved run:
#   small: 4 KiB STOR+RETR (ftpload small-files, SF_SECS each) at 1, 4, 16 and 64 clients:
#          ops/s, p50, p99;
#   list:  LIST and MLSD of folders of 1,000, 10,000 and 100,000 empty files (ms);
#   idle:  PSS per idle logged-in session of a fresh Ferry at 1,000, 10,000 and 50,000 sessions
#          (bench/idle.py; Ferry only: the peers fork a process of 160-520 KiB per session).
# Run as root from the checkout, after ../shared/bench/peers/install.sh; on tmpfs with
# bench/tmpfs.sh (see BENCHMARKS.md). Servers are started by their start.sh, stopped by PID.
#
# Knobs: PEERS="ferry pure-ftpd vsftpd proftpd" CLIENTS="1 4 16 64" SF_SECS=3 ROUNDS=2
#        SIZES="1000 10000 100000" IDLE_COUNTS="1000 10000 50000" PARTS="small list idle"
# Output: one JSON line per measurement in $OUT/scaling.jsonl, and the tables on stdout.
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
PEERS=${PEERS:-"ferry pure-ftpd vsftpd proftpd"}
CLIENTS=${CLIENTS:-"1 4 16 64"}; SF_SECS=${SF_SECS:-3}; ROUNDS=${ROUNDS:-2}
SIZES=${SIZES:-"1000 10000 100000"}; IDLE_COUNTS=${IDLE_COUNTS:-"1000 10000 50000"}
PARTS=${PARTS:-"small list idle"}
OUT=${OUT:-${RESULTS:-$T/results}/scaling-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; RAW=$OUT/scaling.jsonl
# As many descriptors as may be had: 50,000 sessions need more than 50,000 in the server and
# in the client, which a hard limit below that (a container's, say) does not allow; such counts
# are lowered to what the limit allows, and the log says so.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
FD_MAX=$(ulimit -n)
FERRY_IDLE_PID=""
cleanup() { stop_peers; [ -n "$FERRY_IDLE_PID" ] && stop_pid "$FERRY_IDLE_PID"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
emit() {  # peer part x round json
  printf '{"peer":"%s","part":"%s","x":%s,"round":%s,"result":%s}\n' "$1" "$2" "$3" "$4" "${5:-{\}}" >> "$RAW"
  log "$2 $3 r$4 $1: $(echo "$5" | grep -o '"ops_s":[0-9.]*,"p50_ms":[0-9.]*,"p99_ms":[0-9.]*\|"median_ms":[0-9.]*\|"kib_per_session":[0-9.]*\|"errors":[0-9]*' | tr '\n' ' ')"
}
rotated() { local r=$1 a=($PEERS); for k in "${!a[@]}"; do echo "${a[$(( (k + r) % ${#a[@]} ))]}"; done; }

if [[ " $PARTS " == *" small "* || " $PARTS " == *" list "* ]]; then
  for n in $PEERS; do
    start_peer "$n" || exit 1
    for s in $SIZES; do fill_dir "$T/$n/root/list$s" "$s"; done
  done
fi
if [[ " $PARTS " == *" small "* ]]; then
  for r in $(seq "$ROUNDS"); do for c in $CLIENTS; do for n in $(rotated "$r"); do
    emit "$n" small "$c" "$r" "$($L small-files $(A "$n") --clients "$c" --cycles 1000000 --max-seconds "$SF_SECS" 2>/dev/null | tail -1)"
  done; done; done
fi
if [[ " $PARTS " == *" list "* ]]; then
  for r in $(seq "$ROUNDS"); do for s in $SIZES; do for n in $(rotated "$r"); do
    emit "$n" list "$s" "$r" "$($L list-big $(A "$n") --dir "list$s" --runs 1 2>/dev/null | tail -1)"
  done; done; done
fi
stop_peers
if [[ " $PARTS " == *" idle "* ]]; then
  # Ferry alone, freshly started for each count, with limits above the count.
  ( cd "$FERRY_SRC" && cargo build -q --release -p ferry-smol ) || exit 1
  bin=$FERRY_SRC/target/release/ferry
  [ -d "$T/ferry/data/home/bench" ] || { printf 'bench\n' | "$bin" user add bench --password-stdin --data-dir "$T/ferry/data" >/dev/null; }
  for c in $IDLE_COUNTS; do
    if [ "$FD_MAX" != unlimited ] && [ "$c" -gt $((FD_MAX - 1000)) ]; then
      log "idle: $c sessions need more than the hard limit of $FD_MAX descriptors; measuring $((FD_MAX - 1000))"
      c=$((FD_MAX - 1000))
    fi
    setsid "$bin" serve --listen 127.0.0.1:21050 --data-dir "$T/ferry/data" --passive-ports 21850-21999 \
      --max-connections $((c + 100)) --max-connections-per-ip $((c + 100)) --log-level warn \
      </dev/null > "$OUT/ferry-idle.log" 2>&1 &
    FERRY_IDLE_PID=$!
    $L probe --port 21050 --wait 15 | grep -q '"ok":true' || { log "ferry did not start"; exit 1; }
    emit ferry idle "$c" 1 "$(python3 bench/idle.py --port 21050 --pid "$FERRY_IDLE_PID" --count "$c" --hold 5)"
    stop_pid "$FERRY_IDLE_PID"; FERRY_IDLE_PID=""
    sleep 2
  done
fi

python3 - "$RAW" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
peers = list(dict.fromkeys(r["peer"] for r in rows))
def med(part, peer, x, key):
    def get(d, path):
        for k in path.split("."):
            d = d.get(k) if isinstance(d, dict) else None
        return d
    v = [get(r["result"], key) for r in rows if r["part"] == part and r["peer"] == peer and r["x"] == x]
    v = [a for a in v if isinstance(a, (int, float))]
    return st.median(v) if v else None
def table(part, xs, cols, head):
    xs = sorted({r["x"] for r in rows if r["part"] == part})
    if not xs:
        return
    ps = [p for p in peers if any(r["part"] == part and r["peer"] == p for r in rows)]
    print(f"\n| {head} | " + " | ".join(f"{p} {c}" for c, _, _ in cols for p in ps) + " |")
    print("|---" * (1 + len(cols) * len(ps)) + "|")
    for x in xs:
        cells = []
        for _, key, fmt in cols:
            for p in ps:
                v = med(part, p, x, key)
                cells.append("–" if v is None else fmt.format(v))
        print(f"| {x:,} | " + " | ".join(cells) + " |")
table("small", None, [("ops/s", "ops_s", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.2f}"), ("p99 ms", "p99_ms", "{:.2f}")], "clients")
table("list", None, [("LIST ms", "list.median_ms", "{:.1f}"), ("MLSD ms", "mlsd.median_ms", "{:.1f}")], "entries")
table("idle", None, [("KiB/session", "kib_per_session", "{:.2f}"), ("held", "held", "{:,.0f}")], "sessions")
PY
echo "raw: $RAW" >&2
