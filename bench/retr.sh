#!/bin/bash
# RETR of 1 GiB with the file in the page cache at every run: vsftpd, ProFTPD, Pure-FTPd,
# pyftpdlib and Ferry, interleaved, ftpload and curl. Run as root from the checkout:
#
#     bench/retr.sh            # ROUNDS=5
#
# Why: ../shared/bench/run.sh warms the 1 GiB fixture once, at the start. On this VM DAMON's
# proactive reclaim (kdamond, scheme `pageout`: pages not touched for 60 s, up to 128 MiB/s)
# then evicts whichever copy is read least often. The four other peers share one hard-linked
# fixture, read four times a round; Ferry's copy (it refuses hard-linked files) is read once a
# round, so Ferry's RETR in run.sh sometimes reads part of its file from disk. Here every
# server's file is read into the page cache (and `fincore` shows what was still there) just
# before its run, so that each RETR measures the server, not what reclaim left.
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
ROUNDS=${ROUNDS:-5}
PEERS=${PEERS:-"vsftpd proftpd pure-ftpd pyftpdlib ferry"}
OUT=${RESULTS:-$T/results}/retr-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
trap stop_peers EXIT

declare -A FILE=()
for n in $PEERS; do
  start_peer "$n" || exit 1
  if [ "$n" = ferry ]; then FILE[$n]=$T/ferry/data/home/bench/big.bin; else FILE[$n]=$T/$n/root/big.bin; fi
  [ -f "${FILE[$n]}" ] || { log "no ${FILE[$n]}: run ../shared/bench/run.sh once first"; exit 1; }
done

# resident FILE: percentage of the file in the page cache.
resident() { fincore -nb -o RES,SIZE "$1" | awk '{ printf "%.0f", $2 ? 100 * $1 / $2 : 0 }'; }
warm() { local before; before=$(resident "$1"); cat "$1" > /dev/null; echo "$before"; }

for r in $(seq "$ROUNDS"); do
  set -- $PEERS
  # Rotate the order each round.
  for _ in $(seq $(( (r - 1) % $# ))); do set -- "${@:2}" "$1"; done
  for n in "$@"; do
    was=$(warm "${FILE[$n]}")
    mb=$($L retr-big $(A "$n") --path big.bin --runs 1 | grep -o '"median_mb_s":[0-9.]*' | cut -d: -f2)
    echo "$n ftpload $r ${mb:-0} $was" >> "$OUT/runs.txt"
    was=$(warm "${FILE[$n]}")
    mb=$(curl -s -o /dev/null --max-time 120 -w '%{speed_download}' "ftp://bench:bench@127.0.0.1:${PORT[$n]}/big.bin" |
      awk '{ printf "%.1f", $1 / 1e6 }')
    echo "$n curl $r ${mb:-0} $was" >> "$OUT/runs.txt"
    log "r$r $n: $(tail -2 "$OUT/runs.txt" | awk '{ printf "%s %s MB/s (%s%% cached before warming)  ", $2, $4, $5 }')"
  done
done

python3 - "$OUT/runs.txt" <<'EOF' | tee "$OUT/table.md"
import sys, statistics as st
runs = {}
for line in open(sys.argv[1]):
    n, client, _, mb, _ = line.split()
    runs.setdefault(client, {}).setdefault(n, []).append(float(mb))
for client, by in runs.items():
    med = {n: st.median(v) for n, v in by.items()}
    best = max((m for n, m in med.items() if n != "ferry"), default=0)
    print(f"\nRETR 1 GiB, file cached at every run, {client}: median MB/s (runs)\n")
    print("| server | median | runs |\n|---|---|---|")
    for n, v in by.items():
        print(f"| {n} | {med[n]:,.0f} | {', '.join(f'{x:,.0f}' for x in v)} |")
    if best and "ferry" in med:
        print(f"\nFerry / best other: {med['ferry'] / best:.2f}x")
EOF
log "wrote $OUT/table.md"
