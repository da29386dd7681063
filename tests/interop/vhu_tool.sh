#!/bin/bash
# The vhu command against two back-ends: vhu-blk, and qemu-storage-daemon
# 7.2's vhost-user-blk export (scripts/qsd.sh), which no one here wrote.
# probe output checked, verify passes, a short bench runs.
#   usage: vhu_tool.sh VHU VHU_BLK QSD_SH
set -uo pipefail
VHU=$1 BLK=$2 QSD=$3
WORK=$(mktemp -d /tmp/vhu-tool.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT
n=0 fail=0
check() {   # name, command
  n=$((n + 1))
  local out
  if out=$(eval "$2" 2>&1); then echo "ok $n - $1"; else fail=1; echo "not ok $n - $1"; sed 's/^/# /' <<< "$out" | tail -15; fi
}
echo "1..33"

truncate -s 64M "$WORK/blk.img"
"$BLK" --socket-path="$WORK/blk.sock" --blk-file="$WORK/blk.img" --num-queues=2 2> "$WORK/blk.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S $WORK/blk.sock ]] && break; sleep 0.05; done
S=$WORK/blk.sock
check "vhu-blk: probe shows capacity, queues and packed ring" \
  "\"$VHU\" probe $S | tee /dev/stderr | grep -q 'capacity *131072 sectors' && \"$VHU\" probe $S | grep -q RING_PACKED && \"$VHU\" probe $S | grep -q '^queues *2'"
check "vhu-blk: probe --json is valid JSON" \
  "\"$VHU\" probe $S --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"blk\"][\"capacity_sectors\"]==131072 and d[\"queues\"]==2'"
check "vhu-blk: probe leaves the device untouched (status 0 after)" "\"$VHU\" probe $S | grep -q 'status *0x00'"
for a in "--ring=split" "--ring=packed" "--ring=split --notify=inband" "--ring=packed --notify=inband" \
         "--ring=split --notify=poll" "--ring=packed --queues=2" "--ring=split --queues=2 --notify=poll" \
         "--ring=packed --queues=2 --spin-us=20"; do
  check "vhu-blk: verify $a" "\"$VHU\" verify $S --size=16M $a | grep -q 'verify ok'"
done
# vhu as the device's IOMMU: every address an IOVA the back-end must
# translate through what vhu answers to its misses
for a in "--iommu=static --ring=split" "--iommu=dynamic --ring=packed --queues=2" \
         "--iommu=dynamic --ring=split --notify=inband" "--iommu=dynamic --ring=packed --notify=poll"; do
  check "vhu-blk: verify $a" "\"$VHU\" verify $S --size=8M $a | grep -q 'verify ok'"
done
check "vhu-blk: bench --iommu=dynamic" "\"$VHU\" bench $S --runtime=1 --iommu=dynamic --iodepth=8 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ios\"]>0 and not d[\"errors\"] and d[\"iommu\"]==\"dynamic\"'"
check "vhu-blk: bench --plot draws a PNG" \
  "\"$VHU\" bench $S --runtime=1 --plot=$WORK/lat.png && file $WORK/lat.png | grep -q 'PNG image'"
for a in "--ring=split" "--ring=packed --notify=inband" "--rw=randrw --queues=2 --iodepth=32"; do
  check "vhu-blk: bench $a" "\"$VHU\" bench $S --runtime=1 $a --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ios\"]>0 and not d[\"errors\"]'"
done

# doorbells: vhu-blk --doorbell hands each queue a page, vhu kicks by a
# store carrying notification data
truncate -s 64M "$WORK/db.img"
"$BLK" --socket-path="$WORK/db.sock" --blk-file="$WORK/db.img" --num-queues=2 --doorbell 2> "$WORK/db.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S $WORK/db.sock ]] && break; sleep 0.05; done
D=$WORK/db.sock
check "vhu-blk --doorbell: probe shows HOST_NOTIFIER and NOTIFICATION_DATA" \
  "\"$VHU\" probe $D | grep HOST_NOTIFIER | grep -q . && \"$VHU\" probe $D | grep -q NOTIFICATION_DATA"
for a in "--ring=split" "--ring=packed --queues=2"; do
  check "vhu-blk --doorbell: verify --notify=doorbell $a, kicks by store with notification data" \
    "\"$VHU\" verify $D --size=8M --notify=doorbell $a | tee /dev/stderr | grep -q 'verify ok' && \"$VHU\" verify $D --size=8M --notify=doorbell $a | grep -Eq 'kicks: [1-9][0-9]* by doorbell.*notification data on'"
done
check "vhu-blk --doorbell: bench --notify=doorbell" "\"$VHU\" bench $D --runtime=1 --notify=doorbell --iodepth=4 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ios\"]>0 and not d[\"errors\"] and d[\"notify\"]==\"doorbell\"'"

truncate -s 64M "$WORK/qsd.img"
if pid=$("$QSD" "$WORK/qsd.img" "$WORK/qsd.sock" --queues=2 2>"$WORK/qsd.log"); then
  pids+=($pid)
  Q=$WORK/qsd.sock
  check "qemu-storage-daemon: probe shows capacity and 2 queues" \
    "\"$VHU\" probe $Q | tee /dev/stderr | grep -q 'capacity *131072 sectors' && \"$VHU\" probe $Q | grep -q '^queues *2'"
  check "qemu-storage-daemon: probe --json is valid JSON" \
    "\"$VHU\" probe $Q --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"blk\"][\"capacity_sectors\"]==131072'"
  for a in "--ring=split" "--queues=2" "--notify=poll" "--spin-us=20"; do
    check "qemu-storage-daemon: verify $a" "\"$VHU\" verify $Q --size=16M $a | grep -q 'verify ok'"
  done
  check "qemu-storage-daemon: bench" "\"$VHU\" bench $Q --runtime=1 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ios\"]>0 and not d[\"errors\"]'"
  check "qemu-storage-daemon offers no ACCESS_PLATFORM: --iommu refused with a reason" \
    "! \"$VHU\" verify $Q --iommu=static > $WORK/iommu.out 2>&1 && cat $WORK/iommu.out && grep -q 'does not offer VIRTIO_F_ACCESS_PLATFORM' $WORK/iommu.out"
  check "qemu-storage-daemon offers no packed ring: vhu says so" "! \"$VHU\" verify $Q --ring=packed 2>&1 | tee /dev/stderr | grep -q 'verify ok'"
else
  for _ in 1 2 3 4 5 6 7 8 9; do n=$((n + 1)); echo "not ok $n - qemu-storage-daemon did not start"; done
  sed 's/^/# /' "$WORK/qsd.log"
  fail=1
fi
exit $fail
