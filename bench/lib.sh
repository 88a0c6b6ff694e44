# Helpers shared by the bench/*.sh scripts (sourced, after `cd` to the checkout). They drive the
# servers of ../shared/bench: each peer's start.sh prints its PID, and a server is stopped by that
# PID and its children's, never by name.
export FERRY_SRC=${FERRY_SRC:-$PWD}
B=$(cd ../shared/bench && pwd)
export FTPBENCH_TMP=${FTPBENCH_TMP:-/tmp/ftpbench}
T=$FTPBENCH_TMP
declare -A PORT=([vsftpd]=21000 [proftpd]=21010 [pure-ftpd]=21020 [pyftpdlib]=21030 [unftp]=21040 [ferry]=21050)
declare -A PID=()
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# The load generator, built once into $T.
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
# start_peer NAME: starts ../shared/bench/peers/NAME/start.sh, waits until it logs in.
start_peer() {
  PID[$1]=$(cd "$B" && bash "peers/$1/start.sh" | tail -1)
  $L probe --port "${PORT[$1]}" --wait 15 | grep -q '"ok":true' || { log "$1 did not start"; return 1; }
  log "started $1 pid ${PID[$1]}"
}
stop_peers() { for n in "${!PID[@]}"; do stop_pid "${PID[$n]}"; unset "PID[$n]"; done; }
A() { echo "--host 127.0.0.1 --port ${PORT[$1]} --user bench --pass bench"; }
# fill_dir DIR COUNT: a folder of COUNT empty files (kept if it has them already).
fill_dir() {
  [ "$(ls "$1" 2>/dev/null | wc -l)" -eq "$2" ] && return 0
  log "creating $1 ($2 files)"
  rm -rf "$1"; mkdir -p "$1"
  ( cd "$1" && seq -f 'file-%06g.dat' 0 $(($2 - 1)) | xargs touch )
  chown -R bench:bench "$1" 2>/dev/null
}
