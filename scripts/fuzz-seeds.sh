#!/bin/bash
# Remake the seed corpora of the two protocol fuzzers from the unit tests:
#   fuzz_backend  - every session the scripted front-end (tests/minife.c) sends
#                   in test_backend, test_blk and test_blk_hostile, recorded in
#                   the fuzzer's encoding, plus fuzz/gen_backend_seeds.py's
#                   sessions with a ring image; merged down to the inputs that
#                   add coverage (libFuzzer -merge=1).
#   fuzz_frontend - the back-end library's answers to the fuzzer's call
#                   sequence, recorded by test_frontend.
# fuzz_ring and fuzz_blk_req take raw memory images and segment lists that no
# test exchanges; their corpora are minimised from earlier fuzzing runs.
#   usage: scripts/fuzz-seeds.sh   (after a build in build/ and build-fuzz/)
set -euo pipefail
cd "$(dirname "$0")/.."
ninja -C build >/dev/null
ninja -C build-fuzz fuzz/fuzz_backend fuzz/fuzz_frontend >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/rec" "$tmp/backend"
export VHU_FUZZ_SEED_DIR=$tmp/rec CMOCKA_MESSAGE_OUTPUT=TAP
./build/tests/test_backend >/dev/null 2>&1
./build/tests/test_blk build/devices/vhu-blk >/dev/null 2>&1
./build/tests/test_blk_hostile build/devices/vhu-blk >/dev/null 2>&1
./build/tests/test_frontend >/dev/null 2>&1
python3 fuzz/gen_backend_seeds.py "$tmp/rec" >/dev/null
mv "$tmp/rec/test_frontend-good-backend.bin" "$tmp/"
rm -rf fuzz/corpus/backend fuzz/corpus/frontend
mkdir -p fuzz/corpus/backend fuzz/corpus/frontend
./build-fuzz/fuzz/fuzz_backend -merge=1 fuzz/corpus/backend "$tmp/rec" >/dev/null 2>&1
cp "$tmp/test_frontend-good-backend.bin" fuzz/corpus/frontend/
echo "fuzz/corpus/backend: $(ls fuzz/corpus/backend | wc -l) of $(ls "$tmp/rec" | wc -l) recorded sessions"
echo "fuzz/corpus/frontend: 1 recorded reply stream"
