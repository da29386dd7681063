#!/bin/bash
# vhu-mgmt and `vhu admin` (docs/admin-transport.md): managed blk devices
# created on mem:, a file of the backing directory and null:, listed, shown,
# each verified with `vhu verify --member=ID` and benchmarked briefly, then
# destroyed; names outside the directory, missing backings, a second writer,
# unknown members and bad options refused with the specified status; the
# daemon's fds back to their idle count after all of it. TAP output.
MGMT=$1 VHU=$2
n=0 fail=0
t() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fail=1; fi; }
dir=$(mktemp -d /tmp/vhu-mgmt.XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
mkdir "$dir/backings"
truncate -s 32M "$dir/backings/disk.img"
truncate -s 8M "$dir/backings/small.img"
echo secret > "$dir/outside"
ln -s ../outside "$dir/backings/link"
sock=$dir/mgmt.sock
"$MGMT" --socket-path="$sock" --backing-dir="$dir/backings" --engine=sync 2>"$dir/log" &
pid=$!
for _ in $(seq 200); do [[ -S $sock ]] && break; sleep 0.02; done
fds() { ls /proc/$pid/fd | wc -l; }
admin() { "$VHU" admin "$sock" "$@"; }
# the status of a refused command, as "status N, qualifier Q"
refused() {   # args..., then the expected "status N, qualifier Q"
  local want=${*: -1} out
  out=$(admin "${@:1:$#-1}" 2>&1); [[ $? != 0 && $out == *"$want"* ]] || { echo "# got: $out"; return 1; }
}
echo "1..23"
t "caps: blk, no members, four backings" \
  "admin caps > $dir/caps && grep -q '0x4 (blk)' $dir/caps && grep -q 'members  *0 of' $dir/caps && grep -q 'backings  *4' $dir/caps"
t "backings: mem:, null: and the directory's files, not the link out of it" \
  "[[ \$(admin backings | tr '\n' ' ') == 'mem: null: disk.img small.img ' ]]"
idle=$(fds)
t "create on mem: prints id 1" "[[ \$(admin create blk --size=16M) == 1 ]]"
t "create on a file with two queues prints id 2" "[[ \$(admin create blk --backing=disk.img --queues=2 --queue-size=128) == 2 ]]"
t "create read-only, 4096-byte blocks, on null: prints id 3" \
  "[[ \$(admin create blk --backing=null: --size=1G --read-only --block-size=4096) == 3 ]]"
t "list shows the three" "[[ \$(admin list | grep -c '^member') == 3 ]]"
t "show 2: the file's size, its queues, status 0" \
  "admin show 2 > $dir/show && grep -q '65536 sectors' $dir/show && grep -q '2 queue(s) of up to 128' $dir/show && grep -q 'status 0x00' $dir/show"
t "verify --member=1 (mem:)" "\"$VHU\" verify \"$sock\" --member=1 --size=8M --iodepth=32 | grep -q 'verify ok'"
t "verify --member=2 on two queues (the file)" "\"$VHU\" verify \"$sock\" --member=2 --queues=2 --queue-size=128 | grep -q 'verify ok'"
t "the file holds what verify wrote" "! cmp -s -n 4096 $dir/backings/disk.img /dev/zero"
t "a member of 16-entry rings verifies at iodepth 16 (indirect tables), then goes" \
  "id=\$(admin create blk --size=4M --queue-size=16) && \"$VHU\" verify \"$sock\" --member=\$id --size=1M --iodepth=16 | grep -q 'verify ok' && admin destroy \$id"
t "probe --member=3: read-only, block size 4096" \
  "\"$VHU\" probe \"$sock\" --member=3 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"read_only\"] and d[\"blk_size\"]==4096, d'"
t "bench --member=1 for a second, no failed request" \
  "\"$VHU\" bench \"$sock\" --member=1 --runtime=1 --rw=randrw --iodepth=8 > $dir/bench 2>/dev/null && ! grep -q FAILED $dir/bench"
t "a second writer of the same file: EBUSY" "refused create blk --backing=disk.img 'status 16, qualifier 3'"
t "a name with a path: EINVAL, INVALID_FIELD" "refused create blk --backing=../outside 'status 22, qualifier 3'"
t "a link out of the directory: ENXIO" "refused create blk --backing=link 'status 6, qualifier 3'"
t "a backing that does not exist: ENXIO" "refused create blk --backing=nothere.img 'status 6, qualifier 3'"
t "mem: beyond the memory limit: ENOSPC, NORESOURCE" "refused create blk --size=4G 'status 28, qualifier 6'"
t "a capacity larger than the file: INVALID_FIELD" "refused create blk --backing=small.img --size=9M 'status 22, qualifier 3'"
t "verify of a member that does not exist fails with INVALID_MEMBER" \
  "! \"$VHU\" verify \"$sock\" --member=99 2>$dir/err && grep -q 'qualifier 5' $dir/err"
t "destroy 1, 2 and 3; destroying 2 again: INVALID_MEMBER" \
  "admin destroy 1 && admin destroy 2 && admin destroy 3 && refused destroy 2 'status 22, qualifier 5'"
t "ids are never reused: the next member is 5" "[[ \$(admin create blk --size=1M) == 5 ]] && admin destroy 5"
t "the daemon's fds are back at their idle count ($idle), the log has no error" \
  "[[ \$(fds) == $idle ]] && ! grep -q error $dir/log || { cat $dir/log; false; }"
exit $fail
