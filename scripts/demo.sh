#!/bin/bash
# vhu's main job on its embedded default. Until the vhost-user back-end lands
# (issue 3), the main job is the ring engine benchmark: build vhu, then run a
# driver thread and a device thread over split and packed rings and print ns
# per descriptor against the floors. Installs its Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs "${VHU_DEBS[@]}"
[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null
echo "== vhu ring engine benchmark (bench/ring_bench.c)"
./build/bench/ring_bench "${DESCRIPTORS:-2000000}" "${RUNS:-3}"
