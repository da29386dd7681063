#!/bin/bash
# Real peers: QEMU 7.2 with a Linux guest (its own virtio-blk driver) through
# `vhu guest`, against vhu-blk and against qemu-storage-daemon (libvhost-user,
# which no one here wrote). Each run checks the data in the guest and, for
# vhu-blk, the image from the host; --expect asserts what the guest driver
# negotiated, since QEMU silently drops a feature the back-end lacks. Then:
# a back-end that flips one bit on read must fail, vhu guest's own errors,
# and SIGTERM to vhu-blk during guest I/O. TAP output.
#   usage: guest.sh VHU VHU_BLK FLIP_READ_SO QSD_SH
set -uo pipefail
VHU=$1 BLK=$2 FLIP=$3 QSD=$4
WORK=$(mktemp -d /tmp/vhu-interop.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT
# LD_PRELOAD of the flip shim into a sanitizer build: ASan need not come first
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0
source "$(dirname "$0")/tap.sh"
start_blk() {   # name, extra vhu-blk args...: starts vhu-blk on a fresh 64 MiB image
  local name=$1; shift
  truncate -s 64M "$WORK/$name.img"
  "$BLK" --socket-path="$WORK/$name.sock" --blk-file="$WORK/$name.img" "$@" 2> "$WORK/$name.log" &
  pids+=($!)
  wait_sock "$WORK/$name.sock"
}
guest() {   # name, expected exit status, vhu guest args...
  local name=$1 want=$2 out rc; shift 2
  out=$("$VHU" guest "$@" 2>&1); rc=$?
  [[ $rc == "$want" ]]; report "$name (exit $rc)" $? "$out"
}
# vhu guest's run folders go here ($TMPDIR), so that what it leaves behind is countable
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
echo "1..25"

start_blk blk --num-queues=2
S=$WORK/blk.sock I=$WORK/blk.img
guest "vhu-blk: split ring, data checked in the guest and in the image" 0 "$S" --image="$I" --expect=packed=0,queues=1
guest "vhu-blk: packed ring" 0 "$S" --packed --image="$I" --expect=packed=1
guest "vhu-blk: two queues, two vCPUs, both carrying I/O" 0 "$S" --queues=2 --image="$I" --expect=queues=2,workers=2
guest "vhu-blk: event_idx off" 0 "$S" --event-idx=off --image="$I" --expect=event_idx=0
guest "vhu-blk: indirect descriptors off" 0 "$S" --indirect=off --image="$I" --expect=indirect=0
guest "vhu-blk: packed, two queues, queue size 1024, 32 MiB" 0 "$S" --packed --queues=2 --queue-size=1024 --size=32M \
  --image="$I" --expect=packed=1,queues=2
guest "vhu-blk: chardev reconnect" 0 "$S" --reconnect=1 --image="$I"
guest "vhu-blk: the bzImage booted through SeaBIOS" 0 "$S" --boot=bzimage --image="$I" --expect=boot=bzimage
out=$("$VHU" guest "$S" --device-opt=no-such-prop=1 2>&1); rc=$?
[[ $rc == 3 && $out == *"Property 'vhost-user-blk-pci.no-such-prop' not found"* ]]
report "--device-opt reaches QEMU's -device; its refusal is shown (exit 3)" $? "$out"
guest "vhu-blk: fio randrw in the guest" 0 "$S" --workload=fio --runtime=2 --iodepth=16
printf 'set -e\n[ -b "$VHU_DEV" ]\necho vhu-run-script-was-here | dd of=$VHU_DEV bs=512 seek=100 conv=fsync 2>/dev/null\n' > "$WORK/s.sh"
guest "vhu-blk: --run script" 0 "$S" --run="$WORK/s.sh"
dd if="$I" bs=512 skip=100 count=1 2>/dev/null | grep -q vhu-run-script-was-here
report "vhu-blk: the script's write is in the image" $? "$(dd if="$I" bs=512 skip=100 count=1 2>/dev/null | tr -d '\0')"
out=$("$VHU" guest "$S" --packed --json 2>&1)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["result"]=="ok" and d["packed"]==1 and d["features"].startswith("0x")' "$out"
report "vhu-blk: --json is one JSON object" $? "$out"

truncate -s 64M "$WORK/qsd.img"
if pid=$("$QSD" "$WORK/qsd.img" "$WORK/qsd.sock" --queues=2 2> "$WORK/qsd.log"); then
  pids+=($pid)
  Q=$WORK/qsd.sock
  guest "qemu-storage-daemon: split ring" 0 "$Q" --image="$WORK/qsd.img" --expect=packed=0
  guest "qemu-storage-daemon: two queues" 0 "$Q" --queues=2 --image="$WORK/qsd.img" --expect=queues=2
  guest "qemu-storage-daemon: event_idx off, indirect off" 0 "$Q" --event-idx=off --indirect=off \
    --image="$WORK/qsd.img" --expect=event_idx=0,indirect=0
  # qemu-storage-daemon 7.2 offers no VIRTIO_F_RING_PACKED: QEMU drops packed=on and vhu guest says so
  guest "qemu-storage-daemon: --packed is not negotiated, --expect catches it" 1 "$Q" --packed --expect=packed=1
else
  for _ in 1 2 3 4; do report "qemu-storage-daemon did not start" 1 "$(cat "$WORK/qsd.log")"; done
fi

# a back-end that corrupts reads: one bit at 3 MiB + 77, the image itself right
truncate -s 64M "$WORK/flip.img"
VHU_FLIP_OFFSET=$(( 3 * 1048576 + 77 )) LD_PRELOAD=$FLIP \
  "$BLK" --socket-path="$WORK/flip.sock" --blk-file="$WORK/flip.img" --engine=threads 2> "$WORK/flip.log" &
pids+=($!)
wait_sock "$WORK/flip.sock"
out=$("$VHU" guest "$WORK/flip.sock" 2>&1); rc=$?
[[ $rc == 1 && $out == *"mismatch_at_byte_3145805_"* ]]
report "a back-end flipping one bit on read fails, naming the byte" $? "$out"

# vhu guest's own errors: each names the cause, none leaves a process or a file
out=$("$VHU" guest "$WORK/none.sock" 2>&1); rc=$?
[[ $rc == 3 && $out == *"not a socket"* ]]; report "no socket: exit 3, says so" $? "$out"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$WORK/dead.sock"
out=$("$VHU" guest "$WORK/dead.sock" 2>&1); rc=$?
[[ $rc == 3 && $out == *"Connection refused"* ]]; report "socket nobody listens on: exit 3 with QEMU's reason" $? "$out"
out=$("$VHU" guest "$S" --qemu=/nonexistent/qemu 2>&1); rc=$?
[[ $rc == 3 && $out == *"cannot start /nonexistent/qemu"* ]]; report "QEMU missing: exit 3, names it" $? "$out"
out=$("$VHU" guest "$S" --timeout=1 2>&1); rc=$?
[[ $rc == 3 && $out == *"no result within --timeout=1 s"* ]]; report "guest timed out: exit 3, says so" $? "$out"
# SIGTERM during guest I/O: once the guest's writes reach the image, vhu-blk
# gets SIGTERM and must end (status 0) within a second. (That every
# acknowledged write is in the file is checked by test_blk, whose front-end
# knows which writes were acknowledged.)
truncate -s 512M "$WORK/term.img"
"$BLK" --socket-path="$WORK/term.sock" --blk-file="$WORK/term.img" --engine=threads 2> "$WORK/term.log" &
tpid=$!
wait_sock "$WORK/term.sock"
"$VHU" guest "$WORK/term.sock" --size=256M --timeout=120 > "$WORK/term.out" 2>&1 &
gpid=$!
seen=0
for _ in $(seq 1200); do   # up to 60 s for the guest to boot and start writing
  if head -c 4 "$WORK/term.img" | grep -q 'VHU!'; then seen=1; break; fi
  sleep 0.05
done
t0=$EPOCHREALTIME
kill -TERM $tpid
wait $tpid; brc=$?
took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
[[ $seen == 1 && $brc == 0 ]] && awk -v t="$took" 'BEGIN { exit !(t < 1) }'
report "vhu-blk ends within a second of SIGTERM during guest I/O (${took} s)" $? "guest writing: $seen, status $brc"
# the guest now waits on a back-end that is gone: SIGTERM to vhu guest stops its QEMU and cleans up
t0=$EPOCHREALTIME
kill -TERM $gpid
wait $gpid; grc=$?
took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
[[ $grc == 130 ]] && awk -v t="$took" 'BEGIN { exit !(t < 10) }' && ! pgrep -f "id=vhu0,path=$WORK/term.sock" > /dev/null
report "vhu guest interrupted by SIGTERM: exit 130 in ${took} s, its QEMU gone" $? "$(cat "$WORK/term.out")"
left=$(ls -A "$TMPDIR")
[[ -z $left ]] && ! pgrep -f "id=vhu0,path=$WORK" > /dev/null
report "no QEMU and no temporary folder left behind" $? "left: $left $(pgrep -af "id=vhu0,path=$WORK")"

exit $fail
