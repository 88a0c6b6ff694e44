#!/usr/bin/env bash
# One client must not stall the others: 4 clients doing 4 KiB STOR+RETR (ftpload small-files)
# while one more client lists a folder of 100,000 files over and over (`list`), or while one
# client downloads 1 GiB files and another uploads them (`transfers`), each measurement right
# after one of the same clients alone on the same server (a pair). Ferry and Pure-FTPd take
# turns in every round (order alternating), started by ../shared/bench/peers/*/start.sh,
# stopped by their PIDs. Run as root from the checkout, after ../shared/bench/peers/install.sh.
#
# Knobs: ROUNDS=5 SF_SECS=3 SF_CLIENTS=4 PEERS="ferry pure-ftpd" LOADS="list transfers"
#        (also list-elsewhere, transfers-elsewhere: the same load against the other peer, which
#        shows what the load costs the machine itself, the clients included)
# Output: one JSON line per measurement in $OUT/mixed.jsonl (with the loopback's MB/s during it:
# what the load moved), and the table on stdout.
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-5}; SF_SECS=${SF_SECS:-3}; SF_CLIENTS=${SF_CLIENTS:-4}
PEERS=${PEERS:-"ferry pure-ftpd"}; LOADS=${LOADS:-"list transfers"}
OUT=${OUT:-$T/mixed/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; RAW=$OUT/mixed.jsonl
ulimit -n 20000
BG=()  # background load generators of the current measurement
stop_bg() { for p in "${BG[@]}"; do stop_pid "$p"; done; BG=(); }
cleanup() { stop_bg; stop_peers; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fixtures: a 1 GiB file and a folder of 100,000 empty files in each peer's root.
big=$T/fixtures/big.bin
mkdir -p "$T/fixtures"
[ "$(stat -c %s "$big" 2>/dev/null)" = 1073741824 ] || head -c 1073741824 /dev/urandom > "$big"
for n in $PEERS; do
  r=$T/$n/root; mkdir -p "$r"
  [ -f "$r/big.bin" ] || cp "$big" "$r/big.bin"
  fill_dir "$r/big100k" 100000
  chown -R bench:bench "$r" 2>/dev/null
done

for n in $PEERS; do
  start_peer "$n" || exit 1
  cat "$T/$n/root/big.bin" > /dev/null
done

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

# One measurement of small-files against peer $1 under load $2, recorded with pair number $3.
measure() {
  load "$1" "$2"
  # The loopback's bytes during the measurement: what the load moved (the small files' own
  # traffic is a few MB/s of it), so that builds whose transfers go faster are compared fairly.
  local lo0 t0 lo1 t1 lo_mb
  lo0=$(cat /sys/class/net/lo/statistics/tx_bytes); t0=$(date +%s.%N)
  local j; j=$($L small-files $(A "$1") --clients "$SF_CLIENTS" --cycles 1000000 --max-seconds "$SF_SECS")
  lo1=$(cat /sys/class/net/lo/statistics/tx_bytes); t1=$(date +%s.%N)
  lo_mb=$(python3 -c "print(round(($lo1 - $lo0) / ($t1 - $t0) / 1e6))")
  stop_bg
  rm -f "$T"/*/root/ftpload_stor_*.bin   # what a server kept of a cut-off upload
  # An interrupted 1 GiB upload leaves dirty pages whose writeback would throttle every writer
  # (the next measurement's small STORs included): wait until they are on disk.
  sync
  printf '{"peer":"%s","load":"%s","pair":%s,"lo_mb_s":%s,"result":%s}\n' "$1" "$2" "$3" "$lo_mb" "$j" >> "$RAW"
  log "$1 $2 pair $3: $(echo "$j" | grep -o '"ops_s":[0-9.]*,"p50_ms":[0-9.]*,"p99_ms":[0-9.]*'), loopback $lo_mb MB/s"
}

# This machine's speed drifts by 2x and more within minutes, so each loaded measurement is
# paired with one alone, just before it, on the same server: the ratios compare neighbours.
pair=0
for r in $(seq "$ROUNDS"); do
  order=$PEERS; [ $((r % 2)) = 0 ] && order=$(echo "$PEERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for load_kind in $LOADS; do
    for n in $order; do
      pair=$((pair + 1))
      measure "$n" alone "$pair"
      measure "$n" "$load_kind" "$pair"
    done
  done
done

python3 - "$RAW" <<'EOF'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
peers = list(dict.fromkeys(r["peer"] for r in rows))
loads = [l for l in dict.fromkeys(r["load"] for r in rows) if l != "alone"]
# A run with a few failed operations still counts (its errors are in the raw file).
by = {(r["peer"], r["load"], r["pair"]): dict(r["result"], lo_mb_s=r.get("lo_mb_s", 0))
      for r in rows if r["result"].get("ops_s")}
print("| server | load | pairs | ops/s alone | ops/s loaded | p99 ms alone | p99 ms loaded | ops/s loaded/alone | p99 loaded/alone | loopback MB/s loaded |")
print("|---|---|---|---|---|---|---|---|---|---|")
for p in peers:
    for l in loads:
        pairs = [(by[(p, "alone", k)], by[(p, l, k)]) for (pp, ll, k) in by if pp == p and ll == l and (p, "alone", k) in by]
        if not pairs:
            continue
        m = lambda f: st.median(f(a, b) for a, b in pairs)
        print(f"| {p} | {l} | {len(pairs)} | {m(lambda a, b: a['ops_s']):,.0f} | {m(lambda a, b: b['ops_s']):,.0f} "
              f"| {m(lambda a, b: a['p99_ms']):.2f} | {m(lambda a, b: b['p99_ms']):.2f} "
              f"| {m(lambda a, b: b['ops_s'] / a['ops_s']):.2f}x | {m(lambda a, b: b['p99_ms'] / a['p99_ms']):.2f}x "
              f"| {m(lambda a, b: b['lo_mb_s']):,.0f} |")
EOF
echo "raw: $RAW" >&2
