#!/bin/bash
# virtio-mmio with real peers: QEMU's microvm machine with vhost-user-blk on
# its virtio-mmio bus (vhu guest --transport=mmio: ACPI, a modern device, the
# host's TSC rate given to the guest) against vhu-blk; the guest finds the
# disk through ACPI and its own virtio_mmio driver runs the verify workload;
# the host's image check must pass. QEMU 7.2 + Linux 6.1 split, and packed
# with two queues; QEMU 10.0 + Linux 6.12 from the bookworm-backports cache,
# packed with two queues. Regression: QEMU's virtio-mmio offers every ring
# at 1024 whatever queue-size, and sizes the inflight region by queue-size;
# vhu-blk refused the ring (the guest hung), and now runs it untracked.
#   usage: mmio.sh VHU VHU_BLK NEWER_PEERS_SH
set -uo pipefail
VHU=$1 BLK=$2 PEERS=$3
source "$(dirname "$0")/tap.sh"
guest_workdir mmio
echo "1..3"

guest() {   # name, vhu guest args...
  local name=$1; shift
  local img=$WORK/g$n.img sock=$WORK/g$n.sock log=$WORK/g$n.log
  truncate -s 64M "$img"
  "$BLK" --socket-path="$sock" --blk-file="$img" --num-queues=2 -v 2> "$log" &
  local pid=$!
  wait_sock "$sock"
  local out rc
  out=$("$VHU" guest "$sock" --transport=mmio --image="$img" --timeout=240 --expect=transport=mmio "$@" 2>&1)
  rc=$?
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  [[ $rc == 0 && $out == *"host_check=ok"* ]]
  report "$name: verified I/O on virtio-mmio" $? "$out
$(tail -5 "$log")"
}

guest "QEMU 7.2, Linux 6.1, microvm, split ring"
guest "QEMU 7.2, Linux 6.1, microvm, packed ring, two queues" --packed --queues=2 --expect=packed=1,queues=2
if root=$("$PEERS" 2> "$WORK/peers.log"); then
  newer_peer "$root"
  guest "QEMU $q10v, Linux $v612, microvm, packed ring, two queues" --qemu="$q10" --kernel="$k612" --packed --queues=2 \
    --expect=qemu="$q10v",kernel="$v612",packed=1,queues=2
else
  report "QEMU 10.0 and Linux 6.12 fetched from bookworm-backports" 1 "$(cat "$WORK/peers.log")"
fi
exit $fail
