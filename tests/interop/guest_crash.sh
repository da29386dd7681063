#!/bin/bash
# Crash recovery under a real guest: QEMU 7.2 (vhost-user-blk, chardev
# reconnect=1) with a Linux guest writing, fsync'ing and reading back a
# self-describing pattern while vhu-blk is killed with SIGKILL several times
# and started again on the same image and socket. vhu-blk runs on a slow disk
# (slow_io.so: every preadv/pwritev waits), so each kill catches requests it
# has taken and not completed; QEMU keeps the inflight region across the
# restarts and the new process resubmits them. The guest's check and the
# host's check of the image must pass. Split and packed. TAP output.
#   usage: guest_crash.sh VHU VHU_BLK SLOW_IO_SO [KILLS]
set -uo pipefail
VHU=$1 BLK=$2 SLOW=$3 KILLS=${4:-4}
source "$(dirname "$0")/tap.sh"
guest_workdir crash 'pkill -9 -f "vhu-blk --socket-path=$WORK/" 2>/dev/null; kill "${gpid:-}" 2>/dev/null'
echo "1..2"

start_blk() {   # log
  VHU_SLOW_US=20000 LD_PRELOAD=$SLOW "$BLK" --socket-path="$S" --blk-file="$I" --engine=threads -v 2> "$1" &
  bpid=$!
  wait_sock "$S"
}

for ring in split packed; do
  S=$WORK/$ring.sock I=$WORK/$ring.img
  truncate -s 256M "$I"
  start_blk "$WORK/$ring.0.log"
  args=(--reconnect=1 --size=64M --image="$I" --timeout=600)
  [[ $ring == packed ]] && args+=(--packed --expect=packed=1)
  "$VHU" guest "$S" "${args[@]}" > "$WORK/$ring.out" 2>&1 &
  gpid=$!
  for _ in $(seq 2400); do   # up to 120 s for the guest to boot and start writing
    head -c 4 "$I" | grep -q 'VHU!' && break
    sleep 0.05
  done
  kills=0 log=$WORK/$ring.0.log
  for k in $(seq "$KILLS"); do
    # once QEMU is back (it sends the region before the rings), a random moment
    for _ in $(seq 100); do grep -q "inflight region set" "$log" && break; sleep 0.05; done
    sleep "0.$((3 + RANDOM % 7))"
    kill -0 "$gpid" 2>/dev/null || break
    kill -9 "$bpid"; wait "$bpid" 2>/dev/null
    kills=$((kills + 1))
    rm -f "$S"
    sleep 0.5
    log=$WORK/$ring.$k.log
    start_blk "$log"
  done
  wait "$gpid"; rc=$?
  gpid=
  kill "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null
  resub=$(cat "$WORK/$ring".*.log | sed -n 's/.*: \([0-9]*\) requests taken before a restart are resubmitted/\1/p' |
          awk '{s += $1} END {print s + 0}')
  out=$(cat "$WORK/$ring.out")
  # the slow disk makes the back-end hold requests at every kill: at least
  # one must have been resubmitted, or the recovery was not exercised
  [[ $rc == 0 && $out == *"host_check=ok"* && $kills == "$KILLS" && $resub -gt 0 ]]
  report "QEMU 7.2 guest, $ring ring: $kills kills of vhu-blk during verified I/O, $resub requests resubmitted" $? \
    "$out $(tail -n 3 "$WORK/$ring".*.log)"
done
exit $fail
