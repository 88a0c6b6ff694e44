#!/bin/bash
# STOR of 1 GiB with the page cache's dirty data written back before every run: vsftpd,
# ProFTPD, Pure-FTPd, pyftpdlib and Ferry, interleaved. Run as root from the checkout:
#
#     bench/stor.sh            # ROUNDS=5, RUNS=2 uploads per server and round
#
# Why: in ../shared/bench/run.sh each 1 GiB upload starts with whatever the previous writer
# left dirty, and writeback throttling then decides much of its time (every server spreads by
# 15-42% there). Here `sync` runs before each upload, so that each starts from a clean page
# cache; the upload itself is deleted by the load generator after each run, as in run.sh.
#
# WARM=1 also writes and deletes 1 GiB with dd right before each upload. On this VM the
# hypervisor takes back memory that stays free for a few seconds (virtio-balloon free page
# reporting), and the next write into it pays a host fault per page: dd itself writes 1 GiB
# into the page cache at 2.4-5.5 GB/s right after a 1 GiB file was deleted, and at
# 0.7-1.0 GB/s after 6 s of idling (BENCHMARKS.md, "STOR"). The dd was meant to start every
# upload on memory freed a moment before; in two runs it did not narrow any server's spread,
# so it is off by default.
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-2}
WARM=${WARM:-0}
PEERS=${PEERS:-"vsftpd proftpd pure-ftpd pyftpdlib ferry"}
OUT=${RESULTS:-$T/results}/stor-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
trap stop_peers EXIT
for n in $PEERS; do start_peer "$n" || exit 1; done

for r in $(seq "$ROUNDS"); do
  set -- $PEERS
  # Rotate the order each round.
  for _ in $(seq $(( (r - 1) % $# ))); do set -- "${@:2}" "$1"; done
  for n in "$@"; do
    for _ in $(seq "$RUNS"); do
      sync
      if [ "$WARM" = 1 ]; then
        dd if=/dev/zero of="$T/warm.bin" bs=1M count=1024 status=none; rm -f "$T/warm.bin"
      fi
      mb=$($L stor-big $(A "$n") --size 1073741824 --runs 1 | grep -o '"median_mb_s":[0-9.]*' | cut -d: -f2)
      echo "$n $r ${mb:-0}" >> "$OUT/runs.txt"
    done
    log "r$r $n: $(grep "^$n $r " "$OUT/runs.txt" | awk '{ printf "%s ", $3 }')MB/s"
  done
done

python3 - "$OUT/runs.txt" "$WARM" <<'PY' | tee "$OUT/table.md"
import sys, statistics as st
by = {}
for line in open(sys.argv[1]):
    n, _, mb = line.split()
    by.setdefault(n, []).append(float(mb))
med = {n: st.median(v) for n, v in by.items()}
best = max((m for n, m in med.items() if n != "ferry"), default=0)
print(f"\nSTOR 1 GiB after sync{' and a 1 GiB dd written and deleted' if sys.argv[2] == '1' else ''}, MB/s: median (range)\n")
print("| server | median | range |\n|---|---|---|")
for n, v in by.items():
    print(f"| {n} | {med[n]:,.0f} | {min(v):,.0f}-{max(v):,.0f} |")
if best and "ferry" in med:
    print(f"\nFerry / best other: {med['ferry'] / best:.2f}x")
PY
log "wrote $OUT/table.md"
