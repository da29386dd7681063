#!/bin/bash
# vhu's whole test suite: builds vhu twice (optimised with LTO, and debug with
# AddressSanitizer + UndefinedBehaviorSanitizer), runs every test in both,
# runs a subset under valgrind (the 'valgrind' suite, in the optimised build),
# cross-builds for aarch64 and runs the ring and protocol tests under qemu-user,
# runs the demo (the README's first command), runs each libFuzzer target
# briefly (FUZZ_SECONDS, default 60), and ends with
# the line "N passed, N failed" counting individual test cases.
# Installs its Debian packages when missing. Exit status 0 only if all pass.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
vhu_install_debs "${VHU_DEBS[@]}" "${VHU_PEER_DEBS[@]}" || { echo "0 passed, 1 failed"; exit 1; }

builds=(build build-san)
declare -A setup_args=(
  [build]="--buildtype=debugoptimized"
  [build-san]="--buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Db_lto=false"
)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for b in "${builds[@]}"; do
  echo "== $b: configure and build"
  if [[ ! -f $b/build.ninja ]]; then
    # shellcheck disable=SC2086
    meson setup "$b" ${setup_args[$b]} >/dev/null || { echo "meson setup $b failed"; status=1; continue; }
  fi
  ninja -C "$b" || { echo "build $b failed"; status=1; continue; }
  echo "== $b: test"
  meson test -C "$b" --print-errorlogs --num-processes 2 || status=1
done

# The 'valgrind' suite again under memcheck (vhu-blk too, through exec);
# its log is testlog-valgrind.json, counted below with the others.
rm -f build/meson-logs/testlog-valgrind.json
if [[ -f build/build.ninja ]]; then
  echo "== build: the valgrind subset"
  meson test -C build --setup valgrind --suite valgrind --print-errorlogs --num-processes 2 || status=1
fi

# The same library for aarch64 (Debian's cross gcc), its ring and protocol
# tests under qemu-user: no x86-only code, no layout or ordering assumption
# that only x86 keeps. Counted below like the native builds.
aarch64_tests=(ring_roundtrip ring_hostile ring_event ring_stress proto backend frontend)
rm -f build-aarch64/meson-logs/testlog.json
echo "== build-aarch64: cross build, ${aarch64_tests[*]} under qemu-aarch64"
if bash scripts/cross-aarch64.sh > build-aarch64.log 2>&1; then
  meson test -C build-aarch64 --no-rebuild --print-errorlogs --num-processes 2 "${aarch64_tests[@]}" || status=1
else
  tail -30 build-aarch64.log
  status=1
fi

# The README's first command: it must exit 0 and end with the guest's
# passing result line (counted as one case).
demo_pass=0 demo_fail=0
echo "== demo: scripts/demo.sh"
if bash scripts/demo.sh > build-demo.log 2>&1 && tail -n 1 build-demo.log | grep -q '^guest ok: '; then
  demo_pass=1
  echo "demo: ok ($(tail -n 1 build-demo.log | cut -c1-100)...)"
else
  demo_fail=1
  echo "demo: FAILED"
  tail -n 20 build-demo.log
fi

# A short run of every fuzz target (clang, ASan, UBSan): one case each.
# FUZZ_SECONDS=0 skips it; longer runs: scripts/fuzz.sh (docs/TESTING.md).
fuzz_pass=0 fuzz_fail=0
if [[ ${FUZZ_SECONDS:-40} != 0 ]]; then
  echo "== fuzz: ${FUZZ_SECONDS:-40} s per target"
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-40}" > build-fuzz.log 2>&1
  fuzz_rc=$?
  cat build-fuzz.log
  # one line per target; a script that failed before any target ran
  # (the fuzz build) counts as one failure
  fuzz_pass=$(grep -c 'no crash, hang or leak' build-fuzz.log)
  fuzz_fail=$(( $(grep -c '^fuzz_' build-fuzz.log) - fuzz_pass ))
  if [[ $fuzz_rc != 0 && $fuzz_fail == 0 ]]; then fuzz_fail=1; fi
fi

# Count test cases from the TAP each test printed (a test program that died
# before finishing counts as one failure more).
FUZZ_PASS=$((fuzz_pass + demo_pass)) FUZZ_FAIL=$((fuzz_fail + demo_fail)) python3 - "${builds[@]}" build-aarch64 <<'PY'
import json, os, re, sys
passed = failed = 0
logs = [os.path.join(b, "meson-logs", "testlog.json") for b in sys.argv[1:]]
logs.append(os.path.join("build", "meson-logs", "testlog-valgrind.json"))
for log in logs:
    if not os.path.exists(log):
        failed += 1
        continue
    for line in open(log):
        t = json.loads(line)
        out = t.get("stdout") or ""
        ok = len(re.findall(r"^ok\b", out, re.M))
        bad = len(re.findall(r"^not ok\b", out, re.M))
        if ok + bad == 0:          # not a TAP test: one case
            ok, bad = (1, 0) if t["result"] == "OK" else (0, 1)
        elif t["result"] != "OK" and bad == 0:
            bad = 1                # crashed or timed out after its last result
        passed += ok
        failed += bad
passed += int(os.environ.get("FUZZ_PASS", 0))
failed += int(os.environ.get("FUZZ_FAIL", 0))
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
rc=$?
[[ $status == 0 ]] || rc=1
exit $rc
