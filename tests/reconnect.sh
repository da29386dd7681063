#!/bin/bash
# Crash recovery with vhu's own front-end: `vhu verify --reconnect` writes and
# verifies random blocks while vhu-blk is killed with SIGKILL at random
# moments and started again on the same image and socket. Each kill must be
# survived: the front-end reconnects, every request in flight completes
# (the restarted back-end resubmits what it had taken, from the inflight
# region), every read returns the last acknowledged write, and a final pass
# reads every block written. Split and packed, 1 and 2 queues, EVENT_IDX on
# and off. TAP output.
#   usage: reconnect.sh VHU VHU_BLK [KILLS_PER_CASE]
VHU=$1 BLK=$2 KILLS=${3:-5}
dir=$(mktemp -d)
trap 'pkill -9 -f "vhu-blk --socket-path=$dir/s.sock" 2>/dev/null; rm -rf "$dir"' EXIT
truncate -s 64M "$dir/img"
cases=("--ring=split --queues=1 --event-idx=on"
       "--ring=split --queues=2 --event-idx=off"
       "--ring=packed --queues=1 --event-idx=off"
       "--ring=packed --queues=2 --event-idx=on")
echo "1..${#cases[@]}"
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
  if [[ $rc == 0 && $out == *"verify --reconnect ok"* && $out == *"0 mismatches"* && $reconnects == "$KILLS" ]]; then
    echo "ok $n - $c: $KILLS kills, $resub requests resubmitted by the restarted back-end"
  else
    fail=1
    echo "not ok $n - $c (exit $rc, $reconnects reconnects of $KILLS kills)"
    sed 's/^/# /' "$dir/v.log" | tail -20
    tail -n 5 "$dir"/blk*.log | sed 's/^/# /'
  fi
  echo "# $(tail -1 "$dir/v.log")"
done
echo "# in all: $total_kills kills, $total_resub requests resubmitted, lost: none unless a case failed"
exit $fail
