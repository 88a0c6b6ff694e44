#!/usr/bin/env bash
# One client must not stall the others: 4 clients doing 4 KiB STOR+RETR (ftpload small-files)
# alone, then while one more client lists a folder of 100,000 files over and over, then while
# one client downloads 1 GiB files and another uploads them. Ferry and Pure-FTPd take turns
# in every round (order alternating), started by ../shared/bench/peers/*/start.sh, stopped by
# their PIDs. Run as root from the checkout, after ../shared/bench/peers/install.sh.
#
# Knobs: ROUNDS=3 SF_SECS=5 SF_CLIENTS=4 PEERS="ferry pure-ftpd" LOADS="alone list transfers"
#        (also list-elsewhere, transfers-elsewhere: the same load against the other peer, which
#        shows what the load costs the machine itself, the clients included)
# Output: one JSON line per measurement in $OUT/mixed.jsonl, and the table on stdout.
set -u
cd "$(dirname "$0")/.."
export FERRY_SRC=$PWD
B=$(cd ../shared/bench && pwd)
export FTPBENCH_TMP=${FTPBENCH_TMP:-/tmp/ftpbench}
T=$FTPBENCH_TMP
ROUNDS=${ROUNDS:-3}; SF_SECS=${SF_SECS:-5}; SF_CLIENTS=${SF_CLIENTS:-4}
PEERS=${PEERS:-"ferry pure-ftpd"}; LOADS=${LOADS:-"alone list transfers"}
OUT=${OUT:-$T/mixed/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; RAW=$OUT/mixed.jsonl
ulimit -n 20000
declare -A PORT=([ferry]=21050 [pure-ftpd]=21020) PID=()
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

( cd "$B/ftpload" && CARGO_TARGET_DIR=$T/ftpload-target cargo build --release -q ) || exit 1
L=$T/ftpload-target/release/ftpload

descendants() { local p=$1; echo "$p"; for c in $(ps -o pid= --ppid "$p"); do descendants "$c"; done; }
stop_pid() {
  local tree; tree=$(descendants "$1")
  kill "$1" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  for q in $tree; do kill -0 "$q" 2>/dev/null && kill -9 "$q" 2>/dev/null; done
  return 0
}
BG=()  # background load generators of the current measurement
stop_bg() { for p in "${BG[@]}"; do stop_pid "$p"; done; BG=(); }
cleanup() { stop_bg; for n in "${!PID[@]}"; do stop_pid "${PID[$n]}"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fixtures: a 1 GiB file and a folder of 100,000 empty files in each peer's root.
big=$T/fixtures/big.bin
mkdir -p "$T/fixtures"
[ "$(stat -c %s "$big" 2>/dev/null)" = 1073741824 ] || head -c 1073741824 /dev/urandom > "$big"
for n in $PEERS; do
  r=$T/$n/root; mkdir -p "$r"
  [ -f "$r/big.bin" ] || cp "$big" "$r/big.bin"
  if [ "$(ls "$r/big100k" 2>/dev/null | wc -l)" -ne 100000 ]; then
    log "creating $r/big100k"
    rm -rf "$r/big100k"; mkdir -p "$r/big100k"
    ( cd "$r/big100k" && seq -f 'file-%06g.dat' 0 99999 | xargs touch )
  fi
  chown -R bench:bench "$r" 2>/dev/null
done

for n in $PEERS; do
  PID[$n]=$(cd "$B" && bash "peers/$n/start.sh" | tail -1)
  $L probe --port "${PORT[$n]}" --wait 15 | grep -q '"ok":true' || { log "$n did not start"; exit 1; }
  log "started $n pid ${PID[$n]}"
  cat "$T/$n/root/big.bin" > /dev/null
done

A() { echo "--host 127.0.0.1 --port ${PORT[$1]} --user bench --pass bench"; }
# Starts the background load of $2 against peer $1 (`*-elsewhere`: against the other peer, to
# measure what the load costs the machine rather than the server under test).
other() { for p in $PEERS; do [ "$p" != "$1" ] && { echo "$p"; return; }; done; echo "$1"; }
load() {
  local a kind=$2
  if [[ $kind == *-elsewhere ]]; then a=$(A "$(other "$1")"); kind=${kind%-elsewhere}; else a=$(A "$1"); fi
  case $kind in
    alone) ;;
    list)
      ( while :; do $L list-big $a --dir big100k --runs 100 > /dev/null 2>&1; done ) & BG+=($!) ;;
    transfers)
      ( while :; do $L retr-big $a --path big.bin --runs 100 > /dev/null 2>&1; done ) & BG+=($!)
      ( while :; do $L stor-big $a --size 1073741824 --runs 100 > /dev/null 2>&1; done ) & BG+=($!) ;;
  esac
  [ "$2" = alone ] || sleep 1   # let the load get going
}

for r in $(seq "$ROUNDS"); do
  order=$PEERS; [ $((r % 2)) = 0 ] && order=$(echo "$PEERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for load_kind in $LOADS; do
    for n in $order; do
      load "$n" "$load_kind"
      j=$($L small-files $(A "$n") --clients "$SF_CLIENTS" --cycles 1000000 --max-seconds "$SF_SECS")
      stop_bg
      printf '{"peer":"%s","load":"%s","round":%s,"result":%s}\n' "$n" "$load_kind" "$r" "$j" >> "$RAW"
      log "$n $load_kind round $r: $(echo "$j" | grep -o '"ops_s":[0-9.]*,"p50_ms":[0-9.]*,"p99_ms":[0-9.]*')"
    done
  done
done

python3 - "$RAW" <<'EOF'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
peers = list(dict.fromkeys(r["peer"] for r in rows)); loads = list(dict.fromkeys(r["load"] for r in rows))
def med(p, l, k):
    # A run with a few failed operations still counts (its errors are in the raw file).
    v = [r["result"][k] for r in rows if r["peer"] == p and r["load"] == l and r["result"].get("ops_s")]
    return st.median(v) if v else float("nan")
print("| server | load | ops/s | p50 ms | p99 ms | ops/s vs alone | p99 vs alone |")
print("|---|---|---|---|---|---|---|")
for p in peers:
    base_ops, base_p99 = med(p, "alone", "ops_s"), med(p, "alone", "p99_ms")
    for l in loads:
        ops, p50, p99 = med(p, l, "ops_s"), med(p, l, "p50_ms"), med(p, l, "p99_ms")
        print(f"| {p} | {l} | {ops:,.0f} | {p50:.2f} | {p99:.2f} | {ops / base_ops:.2f}x | {p99 / base_p99:.2f}x |")
EOF
echo "raw: $RAW" >&2
