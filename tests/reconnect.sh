#!/bin/bash
# Crash recovery with vhu's own front-end: `vhu verify --reconnect` writes and
# verifies random blocks while vhu-blk is killed with SIGKILL at random
# moments and started again on the same image and socket. Each kill must be
# survived: the front-end reconnects, every request in flight completes
# (the restarted back-end resubmits what it had taken, from the inflight
# region), every read returns the last acknowledged write, and a final pass
# reads every block written. Split and packed, 1 and 2 queues, EVENT_IDX on
# and off; and once with the dirty log on (--dirty-log, as during a live
# migration): every restarted back-end must get the log back and log the
# requests it resubmits (regression: those made the ring refuse to start
# logging, and it broke). Then qemu-storage-daemon (libvhost-user, which offers no
# INFLIGHT_SHMFD in 7.2): the front-end reconnects the same way and the
# daemon redoes what follows the used index (split). TAP output.
#   usage: reconnect.sh VHU VHU_BLK QSD_SH [KILLS_PER_CASE]
VHU=$1 BLK=$2 QSD=$3 KILLS=${4:-5}
dir=$(mktemp -d)
trap 'pkill -9 -f "vhu-blk --socket-path=$dir/s.sock" 2>/dev/null; kill "${qpid:-}" 2>/dev/null; rm -rf "$dir"' EXIT
truncate -s 64M "$dir/img"
cases=("--ring=split --queues=1 --event-idx=on"
       "--ring=split --queues=2 --event-idx=off"
       "--ring=packed --queues=1 --event-idx=off"
       "--ring=packed --queues=2 --event-idx=on"
       "--ring=split --queues=2 --event-idx=on --dirty-log")
echo "1..$(( ${#cases[@]} + 1 ))"
fail=0 n=0 total_kills=0 total_resub=0

start_blk() {   # log file
  "$BLK" --socket-path="$dir/s.sock" --blk-file="$dir/img" --num-queues=2 -v >"$1" 2>&1 &
  blk_pid=$!
  for _ in $(seq 50); do [[ -S $dir/s.sock ]] && return; sleep 0.05; done
}

for c in "${cases[@]}"; do
  n=$((n + 1))
  rm -f "$dir"/blk*.log "$dir/s.sock"
  start_blk "$dir/blk0.log"
  # long enough for the kills; the run ends on its own after them
  runtime=$((KILLS * 13 / 10 + 3))
  # shellcheck disable=SC2086
  "$VHU" verify "$dir/s.sock" --reconnect --runtime=$runtime --iodepth=64 --size=8M $c >"$dir/v.log" 2>&1 &
  vpid=$!
  for k in $(seq "$KILLS"); do
    # a random moment 0.4 .. 1.2 s on, the restart 50 .. 400 ms after
    sleep "0.$((4 + RANDOM % 8))$((RANDOM % 10))"
    kill -9 "$blk_pid"; wait "$blk_pid" 2>/dev/null
    rm -f "$dir/s.sock"
    sleep "0.$((RANDOM % 35 + 5))"
    start_blk "$dir/blk$k.log"
  done
  wait "$vpid"; rc=$?
  kill "$blk_pid" 2>/dev/null; wait "$blk_pid" 2>/dev/null
  out=$(cat "$dir/v.log")
  reconnects=$(sed -n 's/.*; \([0-9]*\) reconnects.*/\1/p' "$dir/v.log")
  resub=$(cat "$dir"/blk*.log | sed -n 's/.*: \([0-9]*\) requests taken before a restart are resubmitted/\1/p' |
          awk '{s += $1} END {print s + 0}')
  total_kills=$((total_kills + KILLS)) total_resub=$((total_resub + resub))
  logged=ok
  if [[ $c == *--dirty-log* ]]; then
    for f in "$dir"/blk*.log; do grep -q 'dirty logging of buffer writes on' "$f" || logged="no log in $f"; done
    ! grep -q 'cannot be logged' "$dir"/blk*.log || logged="a ring could not log"
  fi
  if [[ $rc == 0 && $out == *"verify --reconnect ok"* && $out == *"0 mismatches"* && $reconnects == "$KILLS" &&
        $logged == ok ]]; then
    echo "ok $n - $c: $KILLS kills, $resub requests resubmitted by the restarted back-end"
  else
    fail=1
    echo "not ok $n - $c (exit $rc, $reconnects reconnects of $KILLS kills, log: $logged)"
    sed 's/^/# /' "$dir/v.log" | tail -20
    tail -n 5 "$dir"/blk*.log | sed 's/^/# /'
  fi
  echo "# $(tail -1 "$dir/v.log")"
done
# qemu-storage-daemon: no inflight region; split, so the used index is enough
n=$((n + 1))
rm -f "$dir/q.sock"
if qpid=$("$QSD" "$dir/img" "$dir/q.sock"); then
  "$VHU" verify "$dir/q.sock" --reconnect --runtime=6 --iodepth=32 --size=8M >"$dir/q.log" 2>&1 &
  vpid=$!
  for k in 1 2 3; do
    sleep "1.$((RANDOM % 10))"
    kill -9 "$qpid"; rm -f "$dir/q.sock"
    sleep 0.2
    qpid=$("$QSD" "$dir/img" "$dir/q.sock") || break
  done
  wait "$vpid"; rc=$?
  kill "$qpid" 2>/dev/null
  out=$(cat "$dir/q.log")
  if [[ $rc == 0 && $out == *"3 reconnects"* && $out == *"inflight region: no"* && $out == *" 0 mismatches"* ]]; then
    echo "ok $n - qemu-storage-daemon: 3 kills, reconnected without an inflight region (split: redone from the used index)"
  else
    fail=1
    echo "not ok $n - qemu-storage-daemon reconnect (exit $rc)"
    sed 's/^/# /' "$dir/q.log" | tail -10
  fi
  echo "# $(tail -1 "$dir/q.log")"
else
  fail=1
  echo "not ok $n - qemu-storage-daemon did not start"
fi
echo "# in all: $total_kills kills, $total_resub requests resubmitted, lost: none unless a case failed"
exit $fail
