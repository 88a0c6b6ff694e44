#!/usr/bin/env bash
# How closely Ferry's rate limits hold, and what they cost (BENCHMARKS.md, "Rate limits").
#
# Starts a release Ferry in a temporary folder on a free port with FTPS (a self-signed
# certificate), an account per rate, and measures with curl, ROUNDS times each:
#   - per-account download and upload rates of 1, 10 and 100 MiB/s, over plain and TLS data
#     connections, each transfer sized to last about SECS seconds;
#   - the server's --rate-down cap (150 MiB/s) shared by two accounts downloading at once;
#   - Ferry's CPU time per transfer, limited and unlimited (from /proc/PID/stat).
# Prints one line per measurement: what, the set rate, the achieved rate (the file's size over
# curl's time from the start of the transfer to its end: login and TLS handshakes left out)
# and the ratio.
# Usage: bench/rate.sh   (ROUNDS=3 SECS=4 by default; BASE=/dev/shm to keep the disk out of it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
cargo build --release -q
bin=$PWD/target/release/ferry
dir=$(mktemp -d "${BASE:-/tmp}/ferry-rate.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" cert self-signed --out "$dir/tls" > /dev/null 2>&1
MiB=$((1 << 20))
for r in 1 10 100; do
  echo pw | "$bin" user add "r$r" --password-stdin --data-dir "$dir/data" > /dev/null
  "$bin" user set "r$r" --data-dir "$dir/data" --rate-down "${r}MiB/s" --rate-up "${r}MiB/s" > /dev/null
  head -c $((r * SECS * MiB)) /dev/urandom > "$dir/data/home/r$r/file.bin"
done
for u in free a b; do
  echo pw | "$bin" user add "$u" --password-stdin --data-dir "$dir/data" > /dev/null
  head -c $((75 * SECS * MiB)) /dev/urandom > "$dir/data/home/$u/file.bin"
done
"$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" --log-level warn \
  --tls-cert "$dir/tls/cert.pem" --tls-key "$dir/tls/key.pem" --rate-down 150MiB/s \
  > "$dir/ferry.log" 2>&1 &
pid=$!
sleep 1
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
tick=$(getconf CLK_TCK)
# curl TLS? USER FILE DIRECTION -> bytes per second
xfer() {
  local tls=$1 user=$2 dir_=$3 out
  local args=(-s -o /dev/null --user "$user:pw")
  [ "$tls" = tls ] && args+=(--ssl-reqd -k)
  local size
  size=$(stat -c %s "$dir/data/home/$user/file.bin")
  if [ "$dir_" = down ]; then
    out=$(curl "${args[@]}" -w '%{time_pretransfer} %{time_total}' "ftp://127.0.0.1:$port/file.bin")
  else
    out=$(curl "${args[@]}" -w '%{time_pretransfer} %{time_total}' -T "$dir/data/home/$user/file.bin" "ftp://127.0.0.1:$port/up.bin")
  fi
  echo "$out" | awk -v s="$size" '{ printf "%d\n", s / ($2 - $1) }'
}
line() { awk -v w="$1" -v set="$2" -v got="$3" 'BEGIN {
  printf "%-28s set %8.2f MiB/s  got %8.2f MiB/s  ratio %.3f\n", w, set / 1048576, got / 1048576, got / set }'; }
for round in $(seq "$ROUNDS"); do
  echo "# round $round"
  for tls in plain tls; do
    for r in 1 10 100; do
      for d in down up; do
        before=$(cpu)
        got=$(xfer "$tls" "r$r" "$d")
        used=$(( $(cpu) - before ))
        line "$tls $d r$r (cpu ${used}/${tick} s)" $((r * MiB)) "$got"
      done
    done
    before=$(cpu)
    got=$(xfer "$tls" free up)
    used=$(( $(cpu) - before ))
    echo "$tls up unlimited: $(awk -v g="$got" 'BEGIN { printf "%.1f", g / 1048576 }') MiB/s (cpu ${used}/${tick} s)"
  done
  # Two accounts under the server's 150 MiB/s download cap at once: both files over the
  # time from the first start to the last end (logins included).
  t0=$(date +%s.%N)
  xfer plain a down > /dev/null & pa=$!
  xfer plain b down > /dev/null & pb=$!
  wait "$pa" "$pb"
  t1=$(date +%s.%N)
  both=$(( $(stat -c %s "$dir/data/home/a/file.bin") + $(stat -c %s "$dir/data/home/b/file.bin") ))
  line "server cap, 2 sessions" $((150 * MiB)) "$(awk -v b="$both" -v a="$t0" -v z="$t1" 'BEGIN { printf "%d", b / (z - a) }')"
done
