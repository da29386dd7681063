#!/bin/bash
# vhu-blk's command line, as the vhost-user "Backend program conventions" ask:
# --print-capabilities prints valid JSON and exits 0; bad use exits non-zero
# with a message on stderr; SIGTERM while idle ends it at once. TAP output.
BLK=$1
n=0 fail=0
t() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fail=1; fi; }
echo "1..10"
# the features are QEMU's VHostUserBackendBlockFeature names (docs/interop/vhost-user.json)
t "print-capabilities is valid JSON of type block with the schema's feature names" \
  "\"$BLK\" --print-capabilities | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"type\"]==\"block\" and sorted(d[\"features\"])==[\"blk-file\",\"read-only\"], d'"
t "print-capabilities ignores other options" "\"$BLK\" --print-capabilities --blk-file=/nonexistent >/dev/null"
t "no arguments: exit 2 with usage" "\"$BLK\" 2>/tmp/vhu-cli.$$; [[ \$? == 2 ]] && grep -q usage /tmp/vhu-cli.$$"
t "missing image: exit 1 with a message" \
  "\"$BLK\" --socket-path=/tmp/vhu-cli.$$.sock --blk-file=/nonexistent/x 2>/tmp/vhu-cli.$$; [[ \$? == 1 ]] && grep -q 'cannot use' /tmp/vhu-cli.$$"
t "both --fd and --socket-path refused" "! \"$BLK\" --fd=3 --socket-path=/tmp/x --blk-file=/dev/null 2>/dev/null"
# every refused option is named, with the reason
refused() {   # args..., then the message expected on stderr
  local want=${*: -1} out
  out=$("$BLK" "${@:1:$#-1}" 2>&1); [[ $? == 2 && $out == *"$want"* ]] || { echo "# got: $out"; return 1; }
}
t "--num-queues=0 refused by name" "refused --num-queues=0 --blk-file=x --socket-path=y '--num-queues=0: takes a whole number from 1 to 64'"
t "--engine=foo refused by name" "refused --engine=foo '--engine=foo: takes io_uring, threads, sync or null'"
t "--serial too long refused by name" "refused --serial=123456789012345678901 '--serial=123456789012345678901: at most 20 bytes'"
t "missing --blk-file named" "refused --socket-path=x '--blk-file: is needed'"
img=/tmp/vhu-cli.$$.img sock=/tmp/vhu-cli.$$.sock
truncate -s 1M $img
"$BLK" --socket-path=$sock --blk-file=$img 2>/dev/null &
pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.02; done
start=$EPOCHREALTIME
kill -TERM $pid
t "SIGTERM ends it within a second, status 0, socket removed" \
  "wait $pid; rc=\$?; awk -v s=$start -v e=\$EPOCHREALTIME 'BEGIN{exit !(e-s<1)}' && [[ \$rc == 0 && ! -e $sock ]]"
rm -f $img /tmp/vhu-cli.$$
exit $fail
