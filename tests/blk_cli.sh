#!/bin/bash
# vhu-blk's command line, as the vhost-user "Backend program conventions" ask:
# --print-capabilities prints valid JSON and exits 0; bad use exits non-zero
# with a message on stderr; SIGTERM while idle ends it at once. TAP output.
BLK=$1
n=0 fail=0
t() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fail=1; fi; }
echo "1..6"
t "print-capabilities is valid JSON of type block" \
  "\"$BLK\" --print-capabilities | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"type\"]==\"block\"'"
t "print-capabilities ignores other options" "\"$BLK\" --print-capabilities --blk-file=/nonexistent >/dev/null"
t "no arguments: exit 2 with usage" "\"$BLK\" 2>/tmp/vhu-cli.$$; [[ \$? == 2 ]] && grep -q usage /tmp/vhu-cli.$$"
t "missing image: exit 1 with a message" \
  "\"$BLK\" --socket-path=/tmp/vhu-cli.$$.sock --blk-file=/nonexistent/x 2>/tmp/vhu-cli.$$; [[ \$? == 1 ]] && grep -q 'cannot use' /tmp/vhu-cli.$$"
t "both --fd and --socket-path refused" "! \"$BLK\" --fd=3 --socket-path=/tmp/x --blk-file=/dev/null 2>/dev/null"
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
