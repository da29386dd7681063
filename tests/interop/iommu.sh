#!/bin/bash
# A guest behind QEMU's vIOMMU: q35 with intel-iommu (interrupt remapping,
# device IOTLB), vhost-user-blk-pci with iommu_platform=on,ats=on, a Linux
# guest booted with intel_iommu=on (vhu guest --iommu). vhu-blk then sees
# I/O virtual addresses and learns translations from IOTLB messages: the
# guest's data checks and the host's image check must pass, the guest must
# report ACCESS_PLATFORM negotiated and its disk in an IOMMU group, and
# vhu-blk's log must count updates, invalidations and misses (the guest's
# driver mapping and unmapping every request). Split and packed under QEMU
# 7.2 (packed with two queues), split under QEMU 10.0 from the
# bookworm-backports cache.
# qemu-storage-daemon 7.2, the reference back-end, does not offer
# ACCESS_PLATFORM: QEMU refuses to start it behind the vIOMMU.
#
# The guest runs with iommu.strict=1 (vhu guest adds it): in Linux's default
# lazy mode the unmaps of a request reach QEMU 7.2's vhost-user code only in
# part (79 invalidations for 279 mappings in one run), so a back-end keeps
# translations the guest has withdrawn and then reads a reused IOVA through
# them; strict mode invalidates each unmap as it happens.
#   usage: iommu.sh VHU VHU_BLK QSD_SH NEWER_PEERS_SH
set -uo pipefail
VHU=$1 BLK=$2 QSD=$3 PEERS=$4
pids=()
source "$(dirname "$0")/tap.sh"
guest_workdir iommu 'kill "${pids[@]}" 2>/dev/null'
echo "1..4"

# guest NAME [vhu guest args...]: vhu-blk on a fresh image, one guest behind the vIOMMU
guest() {
  local name=$1; shift
  local img=$WORK/$name.img sock=$WORK/$name.sock log=$WORK/$name.log
  truncate -s 64M "$img"
  "$BLK" --socket-path="$sock" --blk-file="$img" --num-queues=2 -v 2> "$log" &
  local pid=$!
  wait_sock "$sock"
  local out rc
  out=$("$VHU" guest "$sock" --iommu --image="$img" --timeout=240 --expect=access_platform=1,iommu=1 "$@" 2>&1)
  rc=$?
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  local counts
  counts=$(grep -o 'IOTLB: [0-9]* updates, [0-9]* invalidations, [0-9]* misses' "$log" | sort -k2,2n | tail -n 1)
  [[ $rc == 0 && $out == *"host_check=ok"* && $counts =~ IOTLB:\ [1-9][0-9]*\ updates,\ [1-9][0-9]*\ invalidations,\ [1-9][0-9]*\ misses ]]
  report "$name: verified I/O behind the vIOMMU ($counts)" $? "$out
$(tail -5 "$log")"
}

guest "QEMU 7.2, split ring"
# two queues: each waiting for its own page (before the fix, every update
# woke both, both asked again, and QEMU's backlog of answers grew until the
# guest hung)
guest "QEMU 7.2, packed ring, two queues" --packed --queues=2 --expect=packed=1,queues=2
if root=$("$PEERS" 2> "$WORK/peers.log"); then
  newer_peer "$root"
  guest "QEMU $q10v, split ring" --qemu="$q10" --expect=qemu="$q10v"
else
  report "QEMU 10.0 fetched from bookworm-backports" 1 "$(cat "$WORK/peers.log")"
fi

truncate -s 64M "$WORK/qsd.img"
if qpid=$(bash "$QSD" "$WORK/qsd.img" "$WORK/qsd.sock" 2> "$WORK/qsd.log"); then
  pids+=("$qpid")
  out=$("$VHU" guest "$WORK/qsd.sock" --iommu --timeout=60 2>&1)
  rc=$?
  [[ $rc == 3 && $out == *"iommu_platform=true is not supported by the device"* ]]
  report "qemu-storage-daemon is refused behind the vIOMMU (QEMU: iommu_platform not supported)" $? "$out"
else
  report "qemu-storage-daemon started" 1 "$(cat "$WORK/qsd.log")"
fi
exit $fail
