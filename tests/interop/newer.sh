#!/bin/bash
# Newer real peers: QEMU 10.0 and Linux 6.12 from Debian's bookworm-backports
# (scripts/newer-peers.sh fetches and caches them beside QEMU 7.2 and Linux
# 6.1), crossed with the system's: every pair boots through `vhu guest`
# against vhu-blk, and the result line must name the QEMU and kernel the run
# was meant for. QEMU 10 + Linux 6.12 also against qemu-storage-daemon 7.2.
# TAP output.
#   usage: newer.sh VHU VHU_BLK QSD_SH NEWER_PEERS_SH
set -uo pipefail
VHU=$1 BLK=$2 QSD=$3 PEERS=$4
WORK=$(mktemp -d /tmp/vhu-newer.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT
source "$(dirname "$0")/tap.sh"
echo "1..8"
if ! root=$("$PEERS" 2> "$WORK/peers.log"); then
  for _ in 1 2 3 4 5 6 7 8; do report "QEMU 10.0 and Linux 6.12 fetched from bookworm-backports" 1 "$(cat "$WORK/peers.log")"; done
  exit 1
fi
newer_peer "$root"
q72v=$(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')
k61=$(ls /boot/vmlinuz-* | sort -V | tail -n 1)
v61=${k61##*/vmlinuz-}
report "the trees: QEMU $q10v and Linux $v612 beside QEMU $q72v and Linux $v61" 0 ""

truncate -s 64M "$WORK/blk.img"
"$BLK" --socket-path="$WORK/blk.sock" --blk-file="$WORK/blk.img" --num-queues=2 2> "$WORK/blk.log" &
pids+=($!)
wait_sock "$WORK/blk.sock"
S=$WORK/blk.sock I=$WORK/blk.img
guest() {   # name, vhu guest args...
  local name=$1 out rc; shift
  out=$("$VHU" guest "$@" 2>&1); rc=$?
  report "$name" $rc "$out"
}
guest "QEMU $q10v + Linux $v612, split ring" "$S" --qemu="$q10" --kernel="$k612" --image="$I" \
  --expect=qemu=$q10v,kernel=$v612,packed=0
guest "QEMU $q10v + Linux $v612, packed ring, two queues" "$S" --qemu="$q10" --kernel="$k612" --packed --queues=2 \
  --image="$I" --expect=qemu=$q10v,kernel=$v612,packed=1,queues=2
guest "QEMU $q10v + Linux $v612, event_idx and indirect off" "$S" --qemu="$q10" --kernel="$k612" --event-idx=off \
  --indirect=off --image="$I" --expect=event_idx=0,indirect=0
guest "QEMU $q10v + Linux $v612, fio" "$S" --qemu="$q10" --kernel="$k612" --workload=fio --runtime=2 --expect=qemu=$q10v
guest "QEMU $q10v + Linux $v61, packed ring" "$S" --qemu="$q10" --packed --image="$I" --expect=qemu=$q10v,kernel=$v61,packed=1
guest "QEMU $q72v + Linux $v612, packed ring" "$S" --kernel="$k612" --packed --image="$I" --expect=qemu=$q72v,kernel=$v612,packed=1

truncate -s 64M "$WORK/qsd.img"
if pid=$("$QSD" "$WORK/qsd.img" "$WORK/qsd.sock" --queues=2 2> "$WORK/qsd.log"); then
  pids+=($pid)
  guest "QEMU $q10v + Linux $v612 on qemu-storage-daemon $q72v, two queues" "$WORK/qsd.sock" --qemu="$q10" \
    --kernel="$k612" --queues=2 --image="$WORK/qsd.img" --expect=queues=2,kernel=$v612
else
  report "qemu-storage-daemon started" 1 "$(cat "$WORK/qsd.log")"
fi
exit $fail
