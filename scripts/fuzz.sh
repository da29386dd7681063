#!/bin/bash
# Run every libFuzzer target for a bounded time (default 60 s each), from
# its seed corpus in fuzz/corpus/, with ASan and UBSan. A crash, hang or
# leak fails the run and leaves the input in build-fuzz/artifacts/.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs "${VHU_DEBS[@]}" clang libclang-rt-14-dev || exit 1
secs=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_ring fuzz_ring_driver fuzz_blk_req fuzz_backend fuzz_frontend fuzz_inflight fuzz_iotlb fuzz_mmio fuzz_admin fuzz_mgmt)
if [[ ! -f build-fuzz/build.ninja ]]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Db_lto=false --buildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C build-fuzz $(printf 'fuzz/%s ' "${targets[@]}") >/dev/null || exit 1
mkdir -p build-fuzz/artifacts
declare -A seeds=([fuzz_ring]=ring [fuzz_ring_driver]=ring_driver [fuzz_blk_req]=blk_req [fuzz_backend]=backend
                  [fuzz_frontend]=frontend [fuzz_inflight]=inflight [fuzz_iotlb]=iotlb [fuzz_mmio]=mmio [fuzz_admin]=admin
                  [fuzz_mgmt]=mgmt)
declare -A maxlen=([fuzz_ring]=8192 [fuzz_ring_driver]=4096 [fuzz_blk_req]=4096 [fuzz_backend]=12288
                   [fuzz_frontend]=4096 [fuzz_inflight]=8192 [fuzz_iotlb]=2600 [fuzz_mmio]=4096 [fuzz_admin]=4096
                   [fuzz_mgmt]=4096)
fail=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t
  mkdir -p "$work"
  log=build-fuzz/$t.log
  ./build-fuzz/fuzz/$t -max_total_time="$secs" -timeout=10 -max_len="${maxlen[$t]}" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/$t- "$work" "fuzz/corpus/${seeds[$t]}" > "$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if [[ $rc == 0 ]]; then
    echo "$t: ${runs:-?} executions in ${secs} s, no crash, hang or leak"
  else
    fail=1
    echo "$t: FAILED after ${runs:-?} executions (exit $rc); see $log"
    grep -m5 -E 'ERROR|SUMMARY|Test unit written' "$log"
  fi
done
exit $fail
