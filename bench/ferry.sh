#!/usr/bin/env bash
# Starts a release Ferry on the shared benchmark tree (see BENCHMARKS.md), beside the peers that
# ../shared/bench/peers.sh started: data folder $BASE (homes are home/<user>), account
# bench/bench whose home is $BASE/home/bench, port 21300, passive ports 21301-21400.
# Appends "ferry 21300 <pid>" to $BASE/peers.txt (replacing an earlier ferry line).
# Usage: bench/ferry.sh [extra ferry flags, e.g. --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-/tmp/ftpbase}
PORT=${PORT:-21300}
cargo build --release -q
bin=target/release/ferry
[ -d "$BASE/home/bench" ] || { echo "run ../shared/bench/peers.sh start first" >&2; exit 1; }
if ! "$bin" user list --data-dir "$BASE" 2>/dev/null | grep -qw bench; then
  echo bench | "$bin" user add bench --data-dir "$BASE" --password-stdin
fi
# Stop an earlier Ferry of this script, by the PID it recorded.
if [ -f "$BASE/peers.txt" ]; then
  old=$(awk '$1 == "ferry" { print $3 }' "$BASE/peers.txt")
  [ -n "$old" ] && kill "$old" 2>/dev/null && sleep 1
  sed -i '/^ferry /d' "$BASE/peers.txt"
fi
ulimit -n 20000
# Run as bench, as the peers' sessions do, so that every server can replace the others' uploads.
touch "$BASE/audit.log"
chown bench:bench "$BASE/users.toml" "$BASE/audit.log"
setpriv --reuid=bench --regid=bench --init-groups "$bin" serve --data-dir "$BASE" --listen "127.0.0.1:$PORT" \
  --passive-ports "$((PORT + 1))-$((PORT + 100))" \
  --max-connections 20000 --max-connections-per-ip 20000 --log-level warn "$@" \
  > "$BASE/ferry.log" 2>&1 &
pid=$!
sleep 1
kill -0 "$pid" || { cat "$BASE/ferry.log"; exit 1; }
echo "ferry $PORT $pid" >> "$BASE/peers.txt"
cat "$BASE/peers.txt"
