#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation using plain cargo (no
# cargo-fuzz needed) and runs each for SECONDS (default 30), two at a time, starting from the
# checked-in seed corpus. A crash leaves its input in fuzz/artifacts/<target>/ and fails.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(command session path framing proxy)
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$PWD/target/plain"
# An explicit target keeps these flags off build scripts and proc macros (as cargo-fuzz does).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --quiet --bins --target "$host"
bin="$CARGO_TARGET_DIR/$host/release"
run() {
  local t=$1 work
  work=$(mktemp -d)
  mkdir -p "artifacts/$t"
  if "$bin/$t" "$work" "corpus/$t" -dict=ftp.dict -max_total_time="$secs" \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/" > "$work.log" 2>&1; then
    echo "$t: $(grep -E '^#[0-9]+.*DONE' "$work.log" | tail -1 | cut -c1-100)"
  else
    echo "$t: FAILED"; tail -40 "$work.log"; rm -rf "$work"; return 1
  fi
  rm -rf "$work" "$work.log"
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do run "$t" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
exit $status
