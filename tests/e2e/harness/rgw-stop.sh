#!/usr/bin/env bash
# Stops the daemons that rgw-start.sh started under DIR, by their pid files only (never by
# name: other clusters may run on the same machine): TERM, wait up to 10 s, then KILL.
# Safe to run after a partial or failed start, and more than once.
set -uo pipefail

D=${1:?usage: rgw-stop.sh DIR}
pids=()
for f in "$D"/run/*.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f" 2>/dev/null)
  [[ "$p" =~ ^[0-9]+$ ]] || continue
  # A stale pid file may name a reused pid: only signal Ceph daemons.
  case "$(cat "/proc/$p/comm" 2>/dev/null)" in
    ceph-mon | ceph-osd | radosgw) pids+=("$p") ;;
  esac
done
[ ${#pids[@]} -eq 0 ] && { echo "rgw-stop: nothing running under $D"; exit 0; }
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
for _ in $(seq 1 50); do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.2
done
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
echo "rgw-stop: stopped ${#pids[@]} daemons under $D"
