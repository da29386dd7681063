#!/bin/bash
# Real-peer test: QEMU 7.2 with a Linux guest (virtio-blk driver) against
# vhu-blk, through ../shared/interop/guest-blk.sh, which checks the data in
# the guest and the image on the host. One run per configuration the issue
# names; TAP output, one test per configuration.
#   usage: guest_blk.sh VHU_BLK_BINARY [SHARED_DIR]
set -uo pipefail
BLK=$1
SHARED=${2:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
HARNESS_SCRIPT=$SHARED/interop/guest-blk.sh
WORK=$(mktemp -d /tmp/vhu-interop.XXXXXX)
trap 'pkill -P $$ 2>/dev/null; rm -rf "$WORK"' EXIT

configs=(
  "default||1|"
  "packed|packed=on|1|packed=1"
  "two-queues|num-queues=2|2|nq=2"
  "event-idx-off|event_idx=off|1|event_idx=0"
  "indirect-off|indirect_desc=off|1|indirect=0"
)
echo "1..$(( ${#configs[@]} + 1 ))"
if [[ ! -x $HARNESS_SCRIPT ]]; then
  for i in "${!configs[@]}"; do echo "not ok $((i + 1)) - ${configs[$i]%%|*} # $HARNESS_SCRIPT missing"; done
  exit 1
fi
fail=0
n=0
for c in "${configs[@]}"; do
  IFS='|' read -r name opts smp expect <<< "$c"
  n=$((n + 1))
  img=$WORK/$name.img sock=$WORK/$name.sock log=$WORK/$name.log
  truncate -s 64M "$img"
  "$BLK" --socket-path="$sock" --blk-file="$img" --num-queues=2 -v > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
  out=$(SMP=$smp DEV_OPTS=$opts EXPECT=$expect IMG=$img TIMEOUT=120 HARNESS=${HARNESS:-$HOME/.cache/vhu-interop} \
        "$HARNESS_SCRIPT" "$sock" 2>&1)
  rc=$?
  kill -TERM $pid 2>/dev/null
  wait $pid 2>/dev/null
  brc=$?
  result=$(grep -m1 '^GUEST-RESULT' <<< "$out" | cut -c1-200)
  if [[ $rc == 0 && $brc == 0 ]]; then
    echo "ok $n - $name ($opts) ${result:13:60}"
  else
    fail=1
    echo "not ok $n - $name ($opts) harness=$rc vhu-blk=$brc"
    sed 's/^/# /' <<< "$out" | tail -20
    sed 's/^/# vhu-blk: /' "$log" | tail -20
  fi
done

# SIGTERM during guest I/O: the guest streams 256 MiB of writes; once the
# first lands in the image, vhu-blk gets SIGTERM and must end (status 0)
# within a second. (That every acknowledged write is in the file is
# checked exactly by test_blk, whose front-end knows which were acked.)
n=$((n + 1))
img=$WORK/term.img sock=$WORK/term.sock log=$WORK/term.log
truncate -s 512M "$img"
"$BLK" --socket-path="$sock" --blk-file="$img" --engine=threads > "$log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
TIMEOUT=120 HARNESS=${HARNESS:-$HOME/.cache/vhu-interop} "$HARNESS_SCRIPT" "$sock" 256 > "$WORK/term.out" 2>&1 &
guest=$!
seen=0
for _ in $(seq 1200); do   # up to 60 s for the guest to boot and start writing
  if head -c 4 "$img" | grep -q HRNS; then seen=1; break; fi
  sleep 0.05
done
t0=$EPOCHREALTIME
kill -TERM $pid 2>/dev/null
wait $pid; brc=$?
took=$(awk -v a=$t0 -v b=$EPOCHREALTIME 'BEGIN { printf "%.3f", b - a }')
kill $guest 2>/dev/null; pkill -f "path=$sock" 2>/dev/null; wait $guest 2>/dev/null
if [[ $seen == 1 && $brc == 0 ]] && awk -v t=$took 'BEGIN { exit !(t < 1) }'; then
  echo "ok $n - sigterm-during-guest-io (ended ${took}s after SIGTERM)"
else
  fail=1
  echo "not ok $n - sigterm-during-guest-io (guest writing: $seen, status $brc, ${took}s)"
  sed 's/^/# /' "$log" | tail -10
fi
exit $fail
