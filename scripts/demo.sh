#!/bin/bash
# vhu's main job on its embedded default: build vhu, start vhu-blk on a
# temporary 64 MiB image, drive it with the vhu command (probe, verify,
# bench), then boot a real Linux guest under QEMU on it (vhu guest), and
# print what happened, ending with the guest's result line. Exit 0 only if
# the guest's data checked out. Installs its Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs "${VHU_DEBS[@]}" "${VHU_PEER_DEBS[@]}"
[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/vhu-demo.XXXXXX)
trap 'kill $blk 2>/dev/null || true; rm -rf "$work"' EXIT
truncate -s 64M "$work/disk.img"
sock=$work/blk.sock
echo "== vhu-blk on $work/disk.img (64 MiB), socket $sock"
./build/devices/vhu-blk --socket-path="$sock" --blk-file="$work/disk.img" --num-queues=2 -v > "$work/blk.log" 2>&1 &
blk=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done

echo "== vhu probe"
./build/tools/vhu probe "$sock" | sed 's/^/   /'
echo "== vhu verify (16 MiB, packed ring, two queues)"
./build/tools/vhu verify "$sock" --size=16M --ring=packed --queues=2 | sed 's/^/   /'
echo "== vhu bench (4 KiB random reads, iodepth 32, 3 s)"
./build/tools/vhu bench "$sock" --rw=randread --iodepth=32 --runtime=3 2>/dev/null | sed 's/^/   /'

echo "== vhu guest: a Linux guest under QEMU whose disk is vhost-user-blk-pci on vhu-blk"
echo "   (its own virtio-blk driver writes, flushes and reads back a pattern; the image is checked after)"
rc=0
out=$(./build/tools/vhu guest "$sock" --packed --queues=2 --image="$work/disk.img") || rc=$?
tr ' ' '\n' <<< "${out#*: }" |
  sed -n 's/^\(packed\|queues\|event_idx\|indirect\|write_MiBps\|read_MiBps\|accel\|host_boot_s\|host_total_s\|host_check\)=/   \1 = /p'
kill -TERM $blk 2>/dev/null; wait $blk 2>/dev/null || true
echo "== vhu-blk's log (it ended on SIGTERM)"
sed 's/^/   /' "$work/blk.log"
echo "== the guest's result"
echo "$out"
exit $rc
