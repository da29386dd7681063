#!/bin/bash
# The vhu command's refusals: each names the option (or command) and the
# reason, exit status 2, before anything is connected or booted. TAP output.
#   usage: vhu_cli.sh VHU
VHU=$1
n=0 fail=0
refused() {   # description, expected stderr text, args...
  local what=$1 want=$2 out rc; shift 2
  out=$("$VHU" "$@" 2>&1); rc=$?
  n=$((n + 1))
  if [[ $rc == 2 && $out == *"$want"* ]]; then echo "ok $n - $what"; else fail=1; echo "not ok $n - $what (exit $rc)"; echo "# $out"; fi
}
echo "1..14"
refused "bench --iodepth=0" "vhu: --iodepth=0: takes a whole number from 1 to 1024" bench /x --iodepth=0
refused "bench --bs=3" "vhu: --bs=3: takes a multiple of 512 up to 1M" bench /x --bs=3
refused "bench --rw=zz" "vhu: --rw=zz: takes read, write, randread, randwrite or randrw" bench /x --rw=zz
refused "verify --ring=ring" "vhu: --ring=ring: takes split or packed" verify /x --ring=ring
refused "probe --json=1" "vhu: --json: takes no value" probe /x --json=1
refused "an unknown option" "vhu: --zzz: unknown option" bench /x --zzz
refused "iodepth over the queue size" "vhu: --iodepth: cannot be more than --queue-size" bench /x --iodepth=64 --queue-size=32
refused "an unknown command" "vhu: frobnicate: no such command" frobnicate /x
refused "guest --queues=0" "vhu guest: --queues=0: takes a whole number from 1 to 16" guest /x --queues=0
refused "guest --event-idx=maybe" "vhu guest: --event-idx=maybe: takes on or off" guest /x --event-idx=maybe
refused "guest --queue-size=100" "vhu guest: --queue-size: QEMU takes a power of two" guest /x --queue-size=100
refused "guest --size=3k" "vhu guest: --size: takes a whole number of MiB" guest /x --size=3k
refused "guest --image without verify" "vhu guest: --image: goes with the verify workload" guest /x --workload=fio --image=/tmp/i
refused "guest --packed=3" "vhu guest: --packed: takes no value" guest /x --packed=3
exit $fail
