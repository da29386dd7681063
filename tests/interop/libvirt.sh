#!/bin/bash
# libvirt as a peer: Debian's libvirt daemon defines and boots a
# <domain type='qemu'> whose disk is <disk type='vhostuser'> served by
# vhu-blk (through `vhu guest --libvirt`, which writes the domain XML and
# drives virsh); the guest's data is checked in the guest and in the image.
# Uses a running libvirt daemon if there is one, else starts virtlogd and
# libvirtd itself and stops them after. TAP output.
#   usage: libvirt.sh VHU VHU_BLK
set -uo pipefail
VHU=$1 BLK=$2
WORK=$(mktemp -d /tmp/vhu-libvirt.XXXXXX)
chmod 0755 "$WORK"     # libvirt's QEMU runs as another user (libvirt-qemu)
pids=() daemons=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null
  for d in "${daemons[@]}"; do kill "$d" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$(dirname "$0")/tap.sh"
echo "1..4"
for tool in virsh libvirtd virtlogd; do
  command -v $tool >/dev/null || { report "libvirt installed" 1 "$tool not found (apt-get install libvirt-daemon-system libvirt-clients)"; exit 1; }
done
if ! virsh -q -c qemu:///system version >/dev/null 2>&1; then
  mkdir -p /run/libvirt
  pgrep -x virtlogd >/dev/null || { virtlogd -d && daemons+=($(pgrep -nx virtlogd)); }
  libvirtd -d && daemons+=($(pgrep -nx libvirtd))
  for _ in $(seq 100); do virsh -q -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.1; done
fi
out=$(virsh -q -c qemu:///system version 2>&1)
report "libvirt daemon answers" $? "$out"

truncate -s 64M "$WORK/disk.img"
"$BLK" --socket-path="$WORK/blk.sock" --blk-file="$WORK/disk.img" --num-queues=2 2> "$WORK/blk.log" &
pids+=($!)
wait_sock "$WORK/blk.sock"
chmod 0666 "$WORK/blk.sock"
export LIBVIRT_DEFAULT_URI=qemu:///system
out=$("$VHU" guest "$WORK/blk.sock" --libvirt --image="$WORK/disk.img" --expect=via=libvirt,packed=0 2>&1)
report "libvirt domain on vhu-blk: split ring, data checked in guest and image" $? "$out"
out=$("$VHU" guest "$WORK/blk.sock" --libvirt --packed --queues=2 --image="$WORK/disk.img" \
      --expect=via=libvirt,packed=1,queues=2 2>&1)
report "libvirt domain on vhu-blk: packed ring, two queues" $? "$out"
left=$(virsh -q list --all --name | grep '^vhu-guest-')
[[ -z $left ]]
report "no domain left defined or running" $? "$left"
exit $fail
