#!/bin/bash
# vhu's main job on its embedded default: build vhu, start vhu-blk on a
# temporary 64 MiB image, drive it with the vhu command (probe, verify,
# bench), then let a real QEMU guest use it as its disk, and print what
# happened. Installs its Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs "${VHU_DEBS[@]}" "${VHU_PEER_DEBS[@]}"
[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/vhu-demo.XXXXXX)
trap 'kill $blk 2>/dev/null; rm -rf "$work"' EXIT
truncate -s 64M "$work/disk.img"
sock=$work/blk.sock
echo "== vhu-blk on $work/disk.img (64 MiB), socket $sock"
./build/devices/vhu-blk --socket-path="$sock" --blk-file="$work/disk.img" --num-queues=2 -v > >(sed 's/^/   /') 2>&1 &
blk=$!   # vhu-blk itself, not a pipeline
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done

echo "== vhu probe"
./build/tools/vhu probe "$sock" | sed 's/^/   /'
echo "== vhu verify (16 MiB, packed ring, two queues)"
./build/tools/vhu verify "$sock" --size=16M --ring=packed --queues=2 | sed 's/^/   /'
echo "== vhu bench (4 KiB random reads, iodepth 32, 3 s)"
./build/tools/vhu bench "$sock" --rw=randread --iodepth=32 --runtime=3 2>/dev/null | sed 's/^/   /'

echo "== QEMU 7.2 + Linux guest, disk = vhost-user-blk-pci on vhu-blk"
out=$(IMG=$work/disk.img ../shared/interop/guest-blk.sh "$sock")
guest=$(grep -m1 '^GUEST-RESULT' <<< "$out")
echo "   guest: $(awk '{print $2}' <<< "$guest")"
tr ' ' '\n' <<< "$guest" | sed -n 's/^\(write_MBps\|read_MBps\|packed\|event_idx\|indirect\|nq\|dev_bytes\)=/   \1 = /p'
grep -m1 '^HOST-CHECK' <<< "$out" | sed 's/^HOST-CHECK/   host check:/'
kill -TERM $blk 2>/dev/null; wait $blk 2>/dev/null || true
echo "== done: vhu-blk stopped on SIGTERM"
