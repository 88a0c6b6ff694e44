#!/usr/bin/env bash
# Puts the benchmark tree ($FTPBENCH_TMP, default /tmp/ftpbench) on tmpfs for a run, and back.
#   bench/tmpfs.sh on    copies the tree onto a tmpfs (8 GiB) bind-mounted over it
#   bench/tmpfs.sh off   unmounts it: the tree on disk is as before the run
# Every server then reads and writes memory only: what remains is the servers' own work and
# the kernel's network stack, without this disk's writeback stalls and without ext4's inode
# allocator cost after many deletions (BENCHMARKS.md, "Small files"). Write results outside the
# tree (RESULTS=/tmp/ftpbench-results), as `off` drops everything written under it.
set -eu
T=${FTPBENCH_TMP:-/tmp/ftpbench}
S=$T.shm
case ${1:-} in
  on)
    mountpoint -q "$T" && { echo "$T is a mount point already" >&2; exit 1; }
    mkdir -p "$S" "$T"
    mount -t tmpfs -o size=8g,mode=755 tmpfs "$S"
    cp -a "$T/." "$S/"
    mount --bind "$S" "$T"
    echo "$T is on tmpfs" ;;
  off)
    umount "$T"; umount "$S"; rmdir "$S"
    echo "$T is back on disk" ;;
  *) echo "usage: $0 on|off" >&2; exit 2 ;;
esac
