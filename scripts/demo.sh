#!/bin/bash
# vhu's main job on its embedded default: build vhu, start vhu-blk on a
# temporary 64 MiB image, drive it, and print what happened.
# Until the vhu command exists (issue 4), the driver is a real one: QEMU
# boots a throw-away Linux guest whose virtio-blk disk is vhu-blk; the guest
# writes, reads back and verifies a pattern, and the image is checked from
# the host. Installs its Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs "${VHU_DEBS[@]}" "${VHU_PEER_DEBS[@]}"
[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/vhu-demo.XXXXXX)
trap 'kill $blk 2>/dev/null; rm -rf "$work"' EXIT
truncate -s 64M "$work/disk.img"
echo "== vhu-blk on $work/disk.img (64 MiB), socket $work/blk.sock"
./build/devices/vhu-blk --socket-path="$work/blk.sock" --blk-file="$work/disk.img" -v > >(sed 's/^/   /') 2>&1 &
blk=$!   # vhu-blk itself, not a pipeline
for _ in $(seq 100); do [[ -S $work/blk.sock ]] && break; sleep 0.05; done
echo "== QEMU 7.2 + Linux guest, disk = vhost-user-blk-pci on vhu-blk (packed ring: ${PACKED:-off})"
opts=""; [[ ${PACKED:-off} == on ]] && opts=packed=on
IMG=$work/disk.img DEV_OPTS=$opts ../shared/interop/guest-blk.sh "$work/blk.sock" | tr ' ' '\n' | sed -n \
 -e 's/^\(ok\|fail\)$/   guest result: \1/p' -e 's/^\(write_MBps\|read_MBps\|packed\|event_idx\|indirect\|nq\|dev_bytes\)=/   \1 = /p' \
  -e 's/^HOST-CHECK/   host check:/p' -e 's/^\(head\|tail\)=/   \1 = /p'
kill -TERM $blk 2>/dev/null; wait $blk 2>/dev/null || true
echo "== done: vhu-blk stopped on SIGTERM"
./build/bench/ring_bench 1000000 1 | tail -1 | sed 's/^/== ring engine: /'
