#!/bin/bash
# One vhu-blk process, many devices (--export), all on a poll group of two
# threads: 64 exports each pass `vhu verify` at the same time (split and
# packed rings, eventfd, in-band and polled notifications, one and two
# queues); each socket serves its own image (capacities differ, probe tells
# them apart); the process keeps the poll group's threads plus its control
# thread however many exports it serves; a front-end killed in the middle of
# its I/O loses only its own session (its export takes the next, the others
# carry on); a queue a front-end breaks breaks only that export; a Linux
# guest boots on one export while others are verified; fds go back
# to their idle count; SIGTERM ends it with exit 0 and the sockets removed.
# Refused option combinations exit 2. TAP output.
#   usage: exports.sh VHU_BLK VHU BREAK_RING
set -uo pipefail
BLK=$1 VHU=$2 BREAK=$3
WORK=$(mktemp -d /tmp/vhu-exports.XXXXXX)
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$WORK"' EXIT
n=0 fail=0
t() { n=$((n + 1)); if out=$(eval "$2" 2>&1); then echo "ok $n - $1"; else fail=1; echo "not ok $n - $1"; sed 's/^/# /' <<< "$out" | tail -15; fi; }
echo "1..15"
N=64 POLL_THREADS=2
args=()
for i in $(seq 0 $((N - 1))); do
  truncate -s $(( (8 + i % 4) * 1024 * 1024 )) "$WORK/img$i"
  q=$(( i % 4 == 3 ? 2 : 1 ))
  args+=(--export "socket=$WORK/s$i,file=$WORK/img$i,num-queues=$q,serial=export-$i")
done
"$BLK" "${args[@]}" --threads=$POLL_THREADS 2> "$WORK/blk.log" &
pid=$!
for _ in $(seq 200); do [[ -S $WORK/s$((N - 1)) ]] && break; sleep 0.05; done
fds() { ls /proc/$pid/fd | wc -l; }
# threads of the process, without the kernel's io_uring workers (iou-wrk-*,
# which belong to the kernel's io-wq, not to vhu)
threads() { for c in /proc/$pid/task/*/comm; do cat "$c"; done 2>/dev/null | grep -vc '^iou-'; }
idle_fds=$(fds)
t "$N exports listening, $(threads) threads before any front-end" \
  "[[ \$(ls '$WORK'/s* | wc -l) == $N && \$(threads) -le $((POLL_THREADS + 1)) ]]"

# every export verified at once; modes cycle over the exports
modes=("--ring=split" "--ring=packed" "--ring=split --notify=inband" "--ring=packed --notify=poll --queues=2")
for i in $(seq 0 $((N - 1))); do
  # shellcheck disable=SC2086
  "$VHU" verify "$WORK/s$i" --size=4M ${modes[$((i % 4))]} > "$WORK/v$i.log" 2>&1 &
done
sleep 0.3
during=$(threads)
wait_clients() { for j in $(jobs -p); do [[ $j == "$pid" ]] || wait "$j"; done; }
wait_clients
t "all $N pass vhu verify at the same time" \
  "[[ \$(grep -l 'verify ok' '$WORK'/v*.log | wc -l) == $N ]] || grep -L 'verify ok' '$WORK'/v*.log | head -3 | xargs cat"
t "threads stay at the poll group plus the control thread while they run ($during)" "[[ $during -le $((POLL_THREADS + 1)) ]]"
t "each socket serves its own image (capacity, queues)" '
  for i in 0 1 2 3 61 62 63; do
    j=$("$VHU" probe "$WORK/s$i" --json) || exit 1
    python3 -c "import json,sys; d=json.loads(sys.argv[1]); c=d[\"blk\"]; i=int(sys.argv[2])
assert c[\"capacity_sectors\"] == (8 + i % 4) * 2048, c; assert d[\"queues\"] == (2 if i % 4 == 3 else 1), d" "$j" $i || exit 1
  done'

# a front-end that dies in the middle of its I/O
"$VHU" bench "$WORK/s5" --runtime=10 --iodepth=64 > /dev/null 2>&1 &
victim=$!
sleep 1
"$VHU" verify "$WORK/s6" --size=8M > "$WORK/during-kill.log" 2>&1 &
other=$!
kill -9 $victim
wait $victim 2>/dev/null
wait $other; other_rc=$?
t "kill -9 of one export's front-end: another export's verify carries on" "[[ $other_rc == 0 ]] && grep -q 'verify ok' '$WORK/during-kill.log'"
t "and the killed front-end's export serves the next one" "'$VHU' verify '$WORK/s5' --size=4M | grep -q 'verify ok'"

# a front-end that breaks its ring (descriptor table outside guest memory)
t "a broken ring on one export: vhu verify reports it there (NEEDS_RESET)" \
  "'$BREAK' '$WORK/s7'"
t "and the other exports are served meanwhile" "'$VHU' verify '$WORK/s8' --size=4M | grep -q 'verify ok' && '$VHU' verify '$WORK/s7' --size=1M | grep -q 'verify ok'"

# a real Linux guest on one export while four others are verified
for i in 9 10 11 12; do "$VHU" verify "$WORK/s$i" --size=4M > "$WORK/g$i.log" 2>&1 & done
t "a Linux guest on export 3 (packed ring, two queues) while four others are verified" \
  "'$VHU' guest '$WORK/s3' --packed --queues=2 --expect=packed=1,queues=2"
wait_clients
t "and those four pass" "[[ \$(grep -l 'verify ok' '$WORK'/g*.log | wc -l) == 4 ]] || { cat '$WORK'/g*.log; false; }"

sleep 0.3
t "fds back to the idle count ($idle_fds)" "[[ \$(fds) == $idle_fds ]] || { ls -l /proc/$pid/fd | tail; false; }"
kill -TERM $pid
wait $pid; rc=$?
pid=
t "SIGTERM: exit 0, sockets removed" "[[ $rc == 0 ]] && ! ls '$WORK'/s* >/dev/null 2>&1 || { tail '$WORK/blk.log'; false; }"

refused() { local o; o=$("$BLK" "$@" 2>&1); local rc=$?; echo "$o"; [[ $rc == 2 ]]; }
t "--export without file=: exit 2 naming it" "refused --export socket=$WORK/x | grep -q 'file: is needed'"
t "--export with --blk-file, or an unknown key: exit 2 naming it" \
  "refused --export socket=$WORK/x,file=$WORK/img0 --blk-file=$WORK/img0 && refused --export socket=$WORK/x,file=$WORK/img0,colour=blue | grep -q colour"
t "an export that cannot start (no such image, a socket it cannot make): exit 1 naming it" \
  "o=\$('$BLK' --export socket=$WORK/y,file=$WORK/img0 --export socket=$WORK/y2,file=$WORK/none 2>&1); [[ \$? == 1 && \$o == *none* ]] &&
   o=\$('$BLK' --export socket=$WORK/no/dir/s,file=$WORK/img0 2>&1); [[ \$? == 1 && \$o == *'cannot listen'* ]] && [[ ! -e $WORK/y ]]"
exit $fail
