#!/bin/bash
# Doorbells with real peers: vhu-blk --doorbell hands QEMU a host-notifier
# page per queue, QEMU maps it as the queue's notification area
# (vhost-user-blk-pci with page-per-vq=on), and the Linux guest's own
# virtio-pci driver kicks by a store into it. Each guest's data checks and
# the host's image check must pass, and vhu-blk's log must show the doorbell
# live and kicks that came through it. QEMU 7.2 + Linux 6.1, split and packed
# (two queues); QEMU 10.0 + Linux 6.12 from the bookworm-backports cache.
# Without page-per-vq, or for a legacy device (modern off), QEMU refuses the
# page: the kicks stay on the eventfd and the guest passes all the same.
#   usage: doorbell.sh VHU VHU_BLK NEWER_PEERS_SH
set -uo pipefail
VHU=$1 BLK=$2 PEERS=$3
source "$(dirname "$0")/tap.sh"
guest_workdir doorbell
echo "1..5"

# guest NAME WANT [vhu guest args...]: vhu-blk --doorbell on a fresh image,
# one guest; WANT is "live" (kicks must have come by the doorbell) or
# "refused" (QEMU refused the page; none may have)
guest() {
  local name=$1 want=$2; shift 2
  local img=$WORK/${name//[^a-z0-9]/_}.img sock=$WORK/${name//[^a-z0-9]/_}.sock log=$WORK/${name//[^a-z0-9]/_}.log
  truncate -s 64M "$img"
  "$BLK" --socket-path="$sock" --blk-file="$img" --num-queues=2 --doorbell -v 2> "$log" &
  local pid=$!
  wait_sock "$sock"
  local out rc
  out=$("$VHU" guest "$sock" --image="$img" --timeout=240 "$@" 2>&1)
  rc=$?
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  # the largest count of kicks by the doorbell over the queues and sessions
  local kicks
  kicks=$(grep -o 'doorbell: [0-9]* kicks by it' "$log" | awk '{print $2}' | sort -n | tail -n 1)
  local ok=1
  if [[ $rc == 0 && $out == *"host_check=ok"* ]]; then
    if [[ $want == live ]]; then
      grep -q 'doorbell live' "$log" && [[ ${kicks:-0} -gt 0 ]] && ok=0
    else
      grep -q 'refused by the front-end' "$log" && [[ ${kicks:-0} == 0 ]] && ok=0
    fi
  fi
  report "$name: verified I/O, doorbell $want (${kicks:-0} kicks by it)" $ok "$out
$(grep -i doorbell "$log" | tail -8)"
}

guest "QEMU 7.2, Linux 6.1, split ring" live --device-opt=page-per-vq=on
guest "QEMU 7.2, Linux 6.1, packed ring, two queues" live --device-opt=page-per-vq=on --packed --queues=2 \
  --expect=packed=1,queues=2
guest "QEMU 7.2 without page-per-vq" refused
# a legacy device (modern off): QEMU maps no host notifier for it, even with page-per-vq
guest "QEMU 7.2, legacy device (modern off)" refused --device-opt=disable-modern=on --device-opt=disable-legacy=off \
  --device-opt=page-per-vq=on
if root=$("$PEERS" 2> "$WORK/peers.log"); then
  newer_peer "$root"
  guest "QEMU $q10v, Linux $v612, packed ring" live --qemu="$q10" --kernel="$k612" --device-opt=page-per-vq=on \
    --packed --expect=qemu="$q10v",kernel="$v612",packed=1
else
  report "QEMU 10.0 and Linux 6.12 fetched from bookworm-backports" 1 "$(cat "$WORK/peers.log")"
fi
exit $fail
